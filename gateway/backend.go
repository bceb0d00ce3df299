package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// callBackend forwards a verified request to the service's backend.
func (g *Gateway) callBackend(r *http.Request, s *Service, client ident.ClientID, path string, names []string, body *verifyingReader, complete bool, interrupt func(), log *slog.Logger) (*http.Response, *r1.Error) {
	u := strings.TrimSuffix(s.Backend, "/") + path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	ctx, cancel := context.WithCancel(r.Context())
	out, err := http.NewRequestWithContext(ctx, r.Method, u, nil)
	if err != nil {
		cancel()
		return nil, r1.Wrap(err, r1.TypeServerInvalidReq, "cannot build the service request")
	}
	copyNamedAll(out.Header, r.Header, names)
	// The identifiers as the signature covers them, in their canonical
	// escaped form.
	out.Header.Set(r1.HeaderClient, client.Escaped())
	out.Header.Set(r1.HeaderService, s.ID.Escaped())
	switch {
	case complete && body.Len() == 0:
		out.Body = http.NoBody
		out.ContentLength = 0
	case complete:
		out.Body = lend(body, interrupt)
		out.ContentLength = body.Len()
	default:
		out.Body = lend(body, interrupt)
		out.ContentLength = -1
	}
	// The timeout covers waiting for the answer's head; a long body may
	// stream for as long as it takes.
	timer := time.AfterFunc(s.Timeout.D(), cancel)
	resp, err := g.backends.RoundTrip(out)
	if err != nil || !timer.Stop() {
		cancel()
		if err == nil {
			resp.Body.Close()
			err = context.DeadlineExceeded
		}
		if isSigErr(err) || errors.As(err, new(*r1.Error)) {
			return nil, bodyError(err, true, ident.ClientID{})
		}
		log.Warn("service failed", "backend", s.Backend, "err", err)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, r1.Wrap(err, r1.TypeServiceFailed, "service %s did not answer within %s", s.ID, s.Timeout.D())
		}
		return nil, r1.Wrap(err, r1.TypeServiceFailed, "service %s is unreachable", s.ID)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// copyNamedAll copies the named headers of src into dst, but those never
// forwarded (which a gateway of an earlier version may have signed).
func copyNamedAll(dst, src http.Header, names []string) {
	for _, n := range names {
		k := http.CanonicalHeaderKey(n)
		if !r1.Forwardable(k, nil) {
			continue
		}
		dst[k] = src.Values(k)
	}
}
