package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

// countingHandler counts the attribute sets handed to it.
type countingHandler struct {
	slog.Handler
	withAttrs *int
}

func (c countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	*c.withAttrs++
	return countingHandler{c.Handler.WithAttrs(as), c.withAttrs}
}

func TestRequestLogIsLazy(t *testing.T) {
	var buf bytes.Buffer
	n := 0
	text := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
	base := slog.New(countingHandler{text, &n}).With("gateway", "gw1")
	n = 0

	log := requestLog(base, "side", "client", "request_id", "r1")
	log = log.With("client", "c", "service", "s")
	log.Debug("not shown")
	if n != 0 || buf.Len() != 0 {
		t.Fatalf("attributes handed over %d times, output %q: nothing was logged yet", n, buf.String())
	}
	log.Info("first", "k", 1)
	log.Warn("second")
	if n != 1 {
		t.Errorf("attributes handed over %d times, want once", n)
	}
	want := "level=INFO msg=first gateway=gw1 side=client request_id=r1 client=c service=s k=1\n" +
		"level=WARN msg=second gateway=gw1 side=client request_id=r1 client=c service=s\n"
	if buf.String() != want {
		t.Errorf("output\n%s\nwant\n%s", buf.String(), want)
	}

	// A logger derived later keeps what it was given; its parent is unchanged.
	buf.Reset()
	log.With("peer", "p").WithGroup("g").Info("third", "k", 2)
	log.Info("fourth")
	want = "level=INFO msg=third gateway=gw1 side=client request_id=r1 client=c service=s peer=p g.k=2\n" +
		"level=INFO msg=fourth gateway=gw1 side=client request_id=r1 client=c service=s\n"
	if buf.String() != want {
		t.Errorf("output\n%s\nwant\n%s", buf.String(), want)
	}
	if !log.Enabled(context.Background(), slog.LevelInfo) || log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("levels are not the base handler's")
	}
}
