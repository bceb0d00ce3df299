package gateway

import (
	"context"
	"log/slog"
	"sync"
)

// requestLog is the logger of one request: its attributes are handed to
// the gateway's handler only when the request logs something. slog's
// handlers format attributes as they are added, which cost every
// exchange about 3 % of its allocation, while most exchanges log nothing
// at the default level.
func requestLog(base *slog.Logger, args ...any) *slog.Logger {
	return slog.New(&lazyHandler{base: base.Handler()}).With(args...)
}

// lazyHandler keeps the attributes added to it and gives them to base
// the first time a record is handled. Their values are therefore read
// then, not when they were added (as slog's own handlers do): give it
// only values that do not change, such as strings.
type lazyHandler struct {
	base  slog.Handler
	attrs []slog.Attr
	once  sync.Once
	h     slog.Handler
}

func (l *lazyHandler) handler() slog.Handler {
	l.once.Do(func() {
		l.h = l.base
		if len(l.attrs) > 0 {
			l.h = l.base.WithAttrs(l.attrs)
		}
	})
	return l.h
}

func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.base.Enabled(ctx, level)
}

func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.handler().Handle(ctx, r)
}

func (l *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return l
	}
	all := make([]slog.Attr, 0, len(l.attrs)+len(attrs))
	return &lazyHandler{base: l.base, attrs: append(append(all, l.attrs...), attrs...)}
}

func (l *lazyHandler) WithGroup(name string) slog.Handler {
	return l.handler().WithGroup(name)
}
