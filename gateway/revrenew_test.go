package gateway_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/sandbox"
)

// TestSwitchRefusesRevoked: a gateway does not switch to a renewed
// authentication or signing certificate that the configuration it holds
// lists as revoked — peers would refuse every handshake or signature
// made with it — and keeps the certificates in use.
func TestSwitchRefusesRevoked(t *testing.T) {
	w := startWorld(t, sandbox.Options{ConfRefresh: 5 * time.Minute})
	const mof = "VN/GOV/MOF/gw1"
	api := w.adminAPI(t)
	for _, what := range []string{"auth", "sign"} {
		rm := w.renewAt(t, mof)
		serial := rm.out.Auth.Serial
		if what == "sign" {
			serial = rm.out.Sign["VN/GOV/MOF"].Serial
		}
		if err := api.Revoke(t.Context(), serial); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		if ks, err := w.gw[mof].SwitchKeys(); err == nil {
			t.Errorf("%s certificate revoked: switched anyway: %+v", what, ks)
		}
		if fp := w.gw[mof].AuthFingerprint(); fp != rm.oldFP {
			t.Fatalf("%s certificate revoked: the gateway uses %s, want the old %s", what, fp, rm.oldFP)
		}
		// The next renewal starts from new keys.
		dir := w.manifestGateway(mof).DataDir
		for _, f := range []string{"auth.next.key", "auth.next.csr", "auth.next.crt", "sign/next"} {
			if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
