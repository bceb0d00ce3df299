package gateway_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestCachedConfigurationOutlivesAuthority stops the whole sandbox and
// opens a gateway again while its authority is unreachable: it must come
// up on the configuration it cached, stay ready until that expires, and
// say so once it has.
func TestCachedConfigurationOutlivesAuthority(t *testing.T) {
	mg, c := stoppedGateway(t)
	var skew atomic.Int64
	g, err := gateway.New(t.Context(), c, mg.DataDir, gateway.Options{
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.Ready() {
		t.Fatal("gateway not ready on its cached configuration")
	}
	if err := g.RefreshConf(t.Context()); err == nil {
		t.Fatal("refresh succeeded with the authority down")
	}
	if !g.Ready() {
		t.Fatal("a failed refresh dropped the cached configuration")
	}
	skew.Store(int64(11 * time.Minute))
	if g.Ready() {
		t.Fatal("ready on an expired configuration")
	}
}

// stoppedGateway starts a sandbox and stops it again, and returns its
// first gateway with its configuration: a gateway to open on its own,
// whose authority is no longer there.
func stoppedGateway(t *testing.T) (sandbox.ManifestGateway, *gateway.Config) {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	mg := sb.Manifest.Gateways[0]
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := gateway.LoadConfig(mg.Config)
	if err != nil {
		t.Fatal(err)
	}
	return mg, c
}
