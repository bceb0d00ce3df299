package gateway

import (
	"errors"
	"io"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
)

// bodyStore keeps one exchange's bodies, encrypted, when the gateway is
// configured to for the subsystem (log.store_bodies). The files are kept
// only if the exchange is logged.
type bodyStore struct {
	stem      string
	req, resp *msglog.BodyWriter
	kept      bool
}

// startBodies returns nil when the subsystem's bodies are not kept.
func (g *Gateway) startBodies(sub ident.ClientID, requestID, side string) (*bodyStore, error) {
	if !g.cfg.Log.storeBodies[sub] {
		return nil, nil
	}
	if _, err := msglog.ParseID(requestID); err != nil {
		// The provider side names files by the consumer's request id;
		// one that cannot name a file gets one of ours.
		requestID = r1.NewID()
	}
	stem, err := g.mlog.BodyStem(requestID, side)
	if err != nil {
		return nil, err
	}
	b := &bodyStore{stem: stem}
	if b.req, err = g.mlog.NewBody(stem, msglog.PartRequest); err != nil {
		return nil, err
	}
	if b.resp, err = g.mlog.NewBody(stem, msglog.PartResponse); err != nil {
		b.req.Abort()
		return nil, err
	}
	return b, nil
}

// reqW and respW are the writers bodies are copied to (nil: none).
func (b *bodyStore) reqW() io.Writer {
	if b == nil {
		return nil
	}
	return b.req
}

func (b *bodyStore) respW() io.Writer {
	if b == nil {
		return nil
	}
	return b.resp
}

// finish makes both files durable and returns the name the record keeps.
func (b *bodyStore) finish() (string, error) {
	if b == nil {
		return "", nil
	}
	if err := errors.Join(b.req.Close(), b.resp.Close()); err != nil {
		return "", err
	}
	return b.stem, nil
}

// keep marks the files as named by a logged record: discard leaves them.
func (b *bodyStore) keep() {
	if b != nil {
		b.kept = true
	}
}

// discard removes the files of an exchange that was not logged.
func (b *bodyStore) discard() {
	if b == nil || b.kept {
		return
	}
	b.req.Abort()
	b.resp.Abort()
}
