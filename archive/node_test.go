package archive

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/internal/dirlock"
)

// TestNodeTrust: an archive is accepted when of the node's kind and
// signed by one of its keys; another key, or no key to check against,
// only with Force, which is then reported.
func TestNodeTrust(t *testing.T) {
	own, _, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	m := &Manifest{NodeKind: "gateway", NodeID: "VN/GOV/MOF/gw1"}
	tr := &NodeTrust{Kind: "gateway", Keys: []crypto.PublicKey{own}, NoKeys: "give the certificate"}
	if err := tr.Check("d")(m, own); err != nil || tr.Forced {
		t.Fatalf("own key: %v (forced %v)", err, tr.Forced)
	}
	if err := tr.Check("d")(m, other); !errors.Is(err, ErrUntrusted) {
		t.Errorf("another key: %v", err)
	}
	if err := (&NodeTrust{Kind: "authority", Keys: tr.Keys}).Check("d")(m, own); err == nil || !strings.Contains(err.Error(), "not authority") {
		t.Errorf("another kind: %v", err)
	}
	if err := (&NodeTrust{Kind: "gateway", NoKeys: "give the certificate"}).Check("d")(m, own); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "give the certificate") {
		t.Errorf("no keys: %v", err)
	}
	forced := &NodeTrust{Kind: "gateway", Keys: tr.Keys, Force: true}
	if err := forced.Check("d")(m, other); err != nil || !forced.Forced {
		t.Errorf("forced: %v (forced %v)", err, forced.Forced)
	}
}

// TestCheckRestorable: a directory a node holds is refused.
func TestCheckRestorable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckRestorable(dir, "gateway"); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := CheckRestorable(dir, "gateway"); err == nil || !strings.Contains(err.Error(), "in use by a running gateway") {
		t.Errorf("held directory: %v", err)
	}
}
