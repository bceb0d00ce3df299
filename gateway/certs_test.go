package gateway_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
)

// TestCertificateExpiry: the gateway reports how long each certificate
// it holds has left, and warns once a certificate is within 30 days of
// its expiry (here: a clock moved 340 days on, for certificates that
// last a year).
func TestCertificateExpiry(t *testing.T) {
	mg, c := stoppedGateway(t)
	c.ClientListen, c.PeerListen, c.OpsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	var logs lockedBuffer
	ahead := 340 * 24 * time.Hour
	g, err := gateway.New(t.Context(), c, mg.DataDir, gateway.Options{
		Log:   slog.New(slog.NewTextHandler(&logs, nil)),
		Clock: func() time.Time { return time.Now().Add(ahead) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sampan_gateway_cert_expiry_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "use" {
					uses[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	for _, use := range []string{"auth", "sign"} {
		left, ok := uses[use]
		if !ok || left <= 0 || left > 30*24*3600 {
			t.Errorf("%s certificate: %v seconds left (reported %v), want within 30 days on this clock", use, left, ok)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- g.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for logs.count("certificate expires soon") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no expiry warning")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-ran
	if n := logs.count("certificate expires soon"); n != len(uses) {
		t.Errorf("%d warnings, want one per certificate (%d)", n, len(uses))
	}
}
