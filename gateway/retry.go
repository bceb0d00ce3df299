package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// maxPeerAttempts bounds the connections one request to a provider
// gateway is sent on. Go's HTTP/1 client sends a request that can be
// replayed (no body, or an idempotent one) again on the next pooled
// connection when a reused one fails before any answer — the benign case
// is a connection the provider closed while idle. Without a bound, a
// provider whose handler dies on a request would be sent it once per
// pooled connection, each time running its service and writing a record.
const maxPeerAttempts = 2

// errTooManyAttempts ends a request about to be sent a third time.
var errTooManyAttempts = errors.New("the provider gateway closed the connection twice before answering")

// attemptLimit sends each request on at most maxPeerAttempts connections.
type attemptLimit struct{ next http.RoundTripper }

func (t attemptLimit) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		// A body that cannot be read again: the client never resends the
		// request, and there is nothing to count.
		return t.next.RoundTrip(r)
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	var conns atomic.Int32
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if conns.Add(1) > maxPeerAttempts {
				cancel(errTooManyAttempts)
				// The client writes the request before it looks at the
				// context again: closing the connection here makes sure
				// nothing reaches the provider. An HTTP/2 connection is
				// shared with other exchanges, and its client retries only
				// requests the provider never took up.
				if tc, ok := info.Conn.(*tls.Conn); !ok || tc.ConnectionState().NegotiatedProtocol != PeerHTTP2 {
					info.Conn.Close()
				}
			}
		},
	})
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		if c := context.Cause(ctx); errors.Is(c, errTooManyAttempts) {
			err = c
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}
