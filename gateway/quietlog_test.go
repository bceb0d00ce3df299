package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A flood of one message costs the burst per window, and the first line
// of the next window says how many were left out; other messages and
// errors are not held back by it.
func TestQuietHandler(t *testing.T) {
	var buf bytes.Buffer
	h := newQuietHandler(slog.NewTextHandler(&buf, nil), 3, time.Second)
	log := slog.New(h).With("side", "provider")
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	emit := func(at time.Time, level slog.Level, msg string) {
		r := slog.NewRecord(at, level, msg, 0)
		log.Handler().Handle(context.Background(), r)
	}
	for i := range 1000 {
		emit(now.Add(time.Duration(i)*time.Microsecond), slog.LevelInfo, "peer request refused")
	}
	emit(now, slog.LevelInfo, "another message")
	emit(now, slog.LevelError, "peer request refused")
	emit(now.Add(1500*time.Millisecond), slog.LevelInfo, "peer request refused")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	count := func(s string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, s) {
				n++
			}
		}
		return n
	}
	if got := count("level=INFO msg=\"peer request refused\""); got != 4 {
		t.Errorf("%d info lines of the flood, want 3 in the first window and 1 in the next:\n%s", got, buf.String())
	}
	if got := count("similar_lines_left_out=997"); got != 1 {
		t.Errorf("the next window's line does not count the 997 left out:\n%s", buf.String())
	}
	if count("another message") != 1 || count("level=ERROR") != 1 {
		t.Errorf("other messages or errors held back:\n%s", buf.String())
	}
	if count("side=provider") != len(lines) {
		t.Errorf("attributes lost:\n%s", buf.String())
	}
}
