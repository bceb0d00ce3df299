package archive

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/sampan-exchange/sampan/internal/dirlock"
)

// NodeTrust says which archives a restore of a node accepts: those of
// its kind signed by one of Keys, or, with Force, any of its kind.
type NodeTrust struct {
	Kind  string // "authority" or "gateway"
	Keys  []crypto.PublicKey
	Force bool
	// NoKeys is the advice when Keys is empty ("give the anchor").
	NoKeys string
	// Forced is set when an archive was accepted only because of Force.
	Forced bool
}

// Check is a ReadOptions.Trust for the node.
func (t *NodeTrust) Check(dir string) func(*Manifest, crypto.PublicKey) error {
	return func(m *Manifest, pub crypto.PublicKey) error {
		if m.NodeKind != t.Kind {
			return fmt.Errorf("the archive is of a node of kind %s, not %s", m.NodeKind, t.Kind)
		}
		if HasKey(t.Keys, pub) {
			return nil
		}
		if !t.Force {
			if len(t.Keys) == 0 {
				return fmt.Errorf("%w: %s has no key to check it against; %s, or force", ErrUntrusted, dir, t.NoKeys)
			}
			return fmt.Errorf("%w (it is signed by another key: an archive of %q made %s)", ErrUntrusted, m.NodeID, m.CreatedAt.Format(time.RFC3339))
		}
		t.Forced = true
		return nil
	}
}

// HasKey reports whether pub is one of keys.
func HasKey(keys []crypto.PublicKey, pub crypto.PublicKey) bool {
	got, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return false
	}
	for _, k := range keys {
		if b, err := x509.MarshalPKIXPublicKey(k); err == nil && bytes.Equal(b, got) {
			return true
		}
	}
	return false
}

// CheckRestorable refuses a restore into dir while a node runs on it
// (its lock is held) or after an interrupted restore (CheckInterrupted).
func CheckRestorable(dir, kind string) error {
	held, err := dirlock.Held(dir)
	if err != nil {
		return err
	}
	if held {
		return fmt.Errorf("%s is in use by a running %s: stop it first", dir, kind)
	}
	return CheckInterrupted(dir)
}

// BackupOptions says what to add to a node's backup.
type BackupOptions struct {
	// ConfigFile, when set, is archived as config/<its kind>.json.
	ConfigFile string
	// Passphrase, when set, encrypts the archive.
	Passphrase []byte
	// Version is the sampan version recorded in the manifest.
	Version string
}
