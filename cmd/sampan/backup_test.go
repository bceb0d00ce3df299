package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/archive"
	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// TestAuthorityBackupRestoreCommands runs the commands as an operator
// would: a hot encrypted backup, a revocation after it, a dry run and a
// plain restore that refuse to undo it, then a restore that re-applies
// it; the next start publishes above every serial.
func TestAuthorityBackupRestoreCommands(t *testing.T) {
	dir := t.TempDir()
	adir := filepath.Join(dir, "authority")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const token = "operator-token"
	c := &authority.Config{Instance: "VN", Listen: ln.Addr().String(), Operators: []authority.Operator{{Name: "op", TokenSHA256: authority.HashToken(token), Role: authority.RoleAdmin}}}
	c.SetDefaults()
	a, err := authority.New(t.Context(), c, adir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			cancel()
			<-done
			a.Close()
			stopped = true
		}
	}
	defer stop()
	api := authority.NewClient(c.PublicURL, token, a.TLSCACert())
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	if err := api.AddMember(t.Context(), authority.MemberInput{ID: mof, Name: "MOF"}); err != nil {
		t.Fatal(err)
	}
	if err := api.PutGateway(t.Context(), authority.GatewayInput{ID: gid, Address: "127.0.0.1:8443"}); err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, gid.String())
	issued, err := api.Issue(t.Context(), authority.IssueInput{Profile: "auth", Subject: gid.String(), CSR: string(csr)})
	if err != nil {
		t.Fatal(err)
	}
	g := &Globals{LogLevel: "error", LogFormat: "text"}
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("long pass phrase\n"), 0o600)
	arch := filepath.Join(dir, "authority.sba")
	if err := (&AuthorityBackupCmd{Dir: adir, Out: arch, PassphraseFile: pass}).Run(g); err != nil {
		t.Fatalf("sampan authority backup: %v", err)
	}
	if err := (&AuthorityBackupCmd{Dir: adir, Out: arch}).Run(g); err == nil {
		t.Error("backup overwrote an existing archive")
	}
	if err := api.Revoke(t.Context(), issued.Serial); err != nil {
		t.Fatal(err)
	}
	published := a.Current().Serial
	stop()

	restore := func(r AuthorityRestoreCmd) error {
		r.Dir, r.In, r.PassphraseFile = adir, arch, pass
		return r.Run(g)
	}
	if err := restore(AuthorityRestoreCmd{DryRun: true}); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	err = restore(AuthorityRestoreCmd{})
	if !errors.Is(err, authority.ErrWouldRewind) || !strings.Contains(err.Error(), strings.ToLower(issued.Serial)) {
		t.Fatalf("restore over a later revocation: %v", err)
	}
	if err := (&AuthorityRestoreCmd{Dir: adir, In: arch}).Run(g); !errors.Is(err, archive.ErrEncrypted) {
		t.Fatalf("restore without the passphrase: %v", err)
	}
	if err := restore(AuthorityRestoreCmd{Reapply: true}); err != nil {
		t.Fatalf("sampan authority restore --reapply: %v", err)
	}
	a2, err := authority.New(t.Context(), c, adir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if cur := a2.Current(); cur.Serial <= published || len(cur.Revoked) != 1 {
		t.Errorf("after restore: serial %d (published %d), revoked %v", cur.Serial, published, cur.Revoked)
	}
}

// TestGatewayBackupRestoreCommands: a gateway directory made by
// `sampan gateway init` round-trips through the commands, and a
// directory of another gateway refuses the archive.
func TestGatewayBackupRestoreCommands(t *testing.T) {
	dir := t.TempDir()
	g := &Globals{LogLevel: "error", LogFormat: "text"}
	gdir, other := filepath.Join(dir, "gw"), filepath.Join(dir, "other")
	if err := (&GatewayInitCmd{ID: "VN/GOV/MOF/gw1", Dir: gdir}).Run(g); err != nil {
		t.Fatal(err)
	}
	if err := (&GatewayInitCmd{ID: "VN/GOV/MPS/gw1", Dir: other}).Run(g); err != nil {
		t.Fatal(err)
	}
	arch := filepath.Join(dir, "gw.sba")
	if err := (&GatewayBackupCmd{Dir: gdir, Out: arch}).Run(g); err != nil {
		t.Fatalf("sampan gateway backup: %v", err)
	}
	if err := (&GatewayRestoreCmd{Dir: other, In: arch, DryRun: true}).Run(g); !errors.Is(err, archive.ErrUntrusted) {
		t.Fatalf("another gateway's archive: %v", err)
	}
	os.Remove(filepath.Join(gdir, "auth.csr"))
	if err := (&GatewayRestoreCmd{Dir: gdir, In: arch}).Run(g); err != nil {
		t.Fatalf("sampan gateway restore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(gdir, "auth.csr")); err != nil {
		t.Errorf("restore did not bring back auth.csr: %v", err)
	}
}
