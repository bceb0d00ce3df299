package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/sampan-exchange/sampan/r1"
)

// The request limits (Config.Limits) are decided here, once, and both
// sides enforce them the same way: checkLimits on the request line and
// headers before anything is parsed, limitBody on the body as it is
// read.

// checkLimits enforces the URI and header limits, and refuses a body
// announced past the body limit.
func (g *Gateway) checkLimits(r *http.Request) *r1.Error {
	if len(r.RequestURI) > g.cfg.Limits.MaxURILength {
		return r1.New(r1.TypeURITooLong, "request URI of %d characters exceeds the limit of %d", len(r.RequestURI), g.cfg.Limits.MaxURILength)
	}
	if n := headerSize(r.Header); n > g.cfg.Limits.MaxHeaderBytes {
		// (The gateways' own Sampan- headers are not counted: a request
		// within the limit at the consumer's gateway is within it at the
		// provider's, whether its signature travels as a header or not.)
		return r1.New(r1.TypeHeadersTooLarge, "request headers of %d bytes exceed the limit of %d", n, g.cfg.Limits.MaxHeaderBytes)
	}
	if max := g.cfg.Limits.MaxBodyBytes; max >= 0 && r.ContentLength > max {
		return r1.New(r1.TypeRequestTooLarge, "request body of %d bytes exceeds the limit of %d", r.ContentLength, max)
	}
	return nil
}

// headerSize approximates the size of a header block on the wire, less
// the gateways' own headers (Sampan-*, never taken from a client).
func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		if strings.HasPrefix(k, "Sampan-") {
			continue
		}
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// limitBody bounds a request body as it is read: past the limit, reads
// fail with an *http.MaxBytesError. It is given no ResponseWriter: the
// consumer's body is read by the transport's own goroutine while the
// handler may be answering, and net/http's reader would mark the
// response from there.
func (g *Gateway) limitBody(body io.ReadCloser) io.Reader {
	if max := g.cfg.Limits.MaxBodyBytes; max >= 0 {
		return http.MaxBytesReader(nil, body, max)
	}
	return body
}

// isTooLarge reports whether err is a body read past the limit.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
