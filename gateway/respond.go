package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
)

// respond sends the service's answer to the consumer's gateway and signs
// it, binding the request hash. The exchange is logged before the
// consumer's gateway may release the answer:
//   - an answer small enough to hold is signed before anything is sent,
//     with its signature in the headers. When the consumer's gateway
//     accepts it (confirm), the record is written while the answer
//     travels, and the Sampan-Logged trailer follows once it is durable:
//     the two gateways' log writes overlap, and the client waits for one.
//     Otherwise the record is durable before anything is sent. Either
//     way a logging failure is answered with a clear error;
//   - a larger one is streamed with the signature in the trailer, logged
//     before the trailer is sent; if logging fails the stream is cut and
//     the consumer never gets its signature.
//
// Its refusals are answered here, since part of the answer may be out.
func (c *providerCall) respond() *r1.Error {
	w, resp, rec, o := c.w, c.resp, c.rec, c.o
	h := w.Header()
	// The service's own X-Road headers are dropped: the gateway sets them.
	names := forwardHeadersBut(h, resp.Header, "X-Road-")
	rec.ResponseSignedHeaders = names
	if len(names) > maxSignedHeaders {
		c.refuse(r1.New(r1.TypeServiceFailed, "service answered with more than %d headers", maxSignedHeaders))
		return nil
	}
	head := responseHead(resp.StatusCode, rec.RequestHash, h, names)
	// Only HTTP/2 carries trailers after a body of known length; an
	// answer to HEAD ends with its headers, and 204 and 304 answers can
	// carry neither content nor trailers.
	confirm := c.r.ProtoMajor >= 2 && c.r.Method != http.MethodHead && hasFeature(c.r.Header, featureLoggedTrailer) &&
		resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified
	o.status = resp.StatusCode

	// Hold a small answer whole.
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	n, err := io.ReadFull(resp.Body, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if w := c.bs.respW(); w != nil {
			w.Write(buf[:n])
		}
		o.respBytes = int64(n)
		sum := sha256.Sum256(buf[:n])
		sig, p, err := c.seal(head, sum[:], int64(n))
		if err == nil && !confirm {
			err = c.settle(p)
		}
		if err != nil {
			h.Del(hdrSignedHeaders)
			for _, n := range names {
				h.Del(n)
			}
			c.refuse(r1.Wrap(err, r1.TypeServerLoggingFailed, "the exchange could not be written to the message log; the answer is withheld"))
			return nil
		}
		o.enter(stepAnswer)
		// Signed before anything is sent: the signature goes in the
		// headers, and the answer in one frame after them.
		h.Set(hdrSignedHeaders, strings.Join(names, ","))
		h.Set(hdrSignerCert, c.provKey.certB64)
		h.Set(hdrSignature, sig)
		if !confirm {
			w.WriteHeader(resp.StatusCode)
			w.Write(buf[:n])
			return nil
		}
		h.Set("Content-Length", strconv.Itoa(n))
		h.Set(hdrLogged, loggedPending)
		h.Set("Trailer", hdrLogged)
		w.WriteHeader(resp.StatusCode)
		w.Write(buf[:n])
		http.NewResponseController(w).Flush()
		if c.settle(p) != nil {
			// The consumer's gateway withholds the answer: the exchange
			// failed, though its head has gone out.
			h.Set(hdrLogged, loggedFailed)
			o.err = r1.New(r1.TypeServerLoggingFailed, "the exchange could not be written to the message log; the consumer's gateway withholds the answer")
			return nil
		}
		h.Set(hdrLogged, loggedOK)
		return nil
	case err != nil:
		o.log.Warn("reading the service's answer failed", "err", err)
		c.refuse(r1.Wrap(err, r1.TypeServiceFailed, "reading the answer of %s failed", rec.Service))
		return nil
	}

	o.enter(stepAnswer)
	h.Set(hdrSignedHeaders, strings.Join(names, ","))
	h.Set(hdrSignerCert, c.provKey.certB64)
	h.Set("Trailer", hdrSignature)
	w.WriteHeader(resp.StatusCode)
	body := newSigningReader(io.MultiReader(bytes.NewReader(buf), resp.Body), func(sum []byte, n int64) error {
		sig, p, err := c.seal(head, sum, n)
		if err == nil {
			err = c.settle(p)
		}
		if err != nil {
			return err
		}
		h.Set(hdrSignature, sig)
		return nil
	})
	body.tee = c.bs.respW()
	_, err = io.Copy(w, body)
	o.respBytes = body.n
	if err != nil {
		o.aborted = true
		o.log.Warn("response stream aborted", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// refuse answers with e in place of the service's answer.
func (c *providerCall) refuse(e *r1.Error) {
	c.o.refuse(e)
	r1.Write(c.w, e, c.rec.RequestID)
}

// seal signs the answer and hands its record to the log.
func (c *providerCall) seal(head, sum []byte, n int64) (string, *msglog.Pending, error) {
	g, k, rec := c.g, c.provKey, c.rec
	start := time.Now()
	sig, err := k.batch.Sign(c.r.Context(), rec.PeerGateway, signedPayload(head, sum, k.fp))
	if err != nil {
		return "", nil, fmt.Errorf("sign response: %w", err)
	}
	signed := time.Now()
	defer func() { c.o.spend(stepLog, time.Since(signed)) }()
	if c.o.cur != stepSign {
		c.o.spend(stepSign, signed.Sub(start))
	}
	rec.ResponseAt, rec.Status = time.Now().UTC(), c.resp.StatusCode
	rec.ResponseHeadSHA256, rec.ResponseBodySHA256, rec.ResponseBytes = hexSum(head), hex.EncodeToString(sum), n
	rec.ResponseSignature, rec.ResponseSignerCert = sig, k.fp
	err = errors.Join(g.mlog.StoreKnownCert(k.fp, k.der), g.mlog.StoreKnownCert(rec.RequestSignerCert, c.sg.cert.Raw))
	if err == nil {
		rec.Bodies, err = c.bs.finish()
	}
	var p *msglog.Pending
	if err == nil {
		p, err = g.mlog.Begin(rec)
	}
	if err != nil {
		c.o.log.Error("exchange not logged; answer withheld", "err", err)
		return "", nil, err
	}
	return sig, p, nil
}

// settle waits until the record is durable.
func (c *providerCall) settle(p *msglog.Pending) error {
	start := time.Now()
	defer func() { c.o.spend(stepLog, time.Since(start)) }()
	if err := p.Wait(context.WithoutCancel(c.r.Context())); err != nil {
		c.o.log.Error("exchange not logged; answer withheld", "err", err)
		return err
	}
	c.bs.keep()
	return nil
}
