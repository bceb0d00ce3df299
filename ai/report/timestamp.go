package report

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/sampan-exchange/sampan/msglog"
)

// Timestamp asks an RFC 3161 time-stamping authority (the authority's
// /tsa) for a token over a SHA-256 digest, checks that the token answers
// the request (digest and nonce) and returns the token's DER.
func Timestamp(ctx context.Context, hc *http.Client, tsaURL string, digest []byte) ([]byte, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	q, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest, Certificates: true, Nonce: nonce}).Marshal()
	if err != nil {
		return nil, fmt.Errorf("time-stamp request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tsaURL, bytes.NewReader(q))
	if err != nil {
		return nil, fmt.Errorf("time-stamp request: %w", err)
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("time-stamping authority: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("time-stamping authority: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("time-stamping authority: HTTP %d", resp.StatusCode)
	}
	ts, err := msglog.ParseTokenResponse(body)
	if err != nil {
		return nil, fmt.Errorf("time-stamp response: %w", err)
	}
	if !bytes.Equal(ts.HashedMessage, digest) || ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, errors.New("time-stamp response does not answer the request")
	}
	if len(ts.Certificates) == 0 {
		return nil, errors.New("time-stamp carries no certificate")
	}
	return ts.RawToken, nil
}
