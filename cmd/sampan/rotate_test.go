package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/sampan-exchange/sampan/authority"
)

// TestRotateCommands runs `sampan authority rotate` as an operator would,
// against a running authority: status, prepare, an activation refused
// for its waiting time, then forced.
func TestRotateCommands(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const token = "operator-token"
	c := &authority.Config{Instance: "VN", Listen: ln.Addr().String(), Operators: []authority.Operator{{Name: "op", TokenSHA256: authority.HashToken(token), Role: authority.RoleAdmin}}}
	c.SetDefaults()
	a, err := authority.New(t.Context(), c, filepath.Join(dir, "authority"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() { cancel(); <-done; a.Close() }()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)

	run := func(args ...string) (string, error) {
		t.Helper()
		var cli CLI
		p, err := kong.New(&cli, kong.Name("sampan"))
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--url", c.PublicURL, "--tls-ca", a.TLSCAPath(), "--token-file", tokenFile)
		k, err := p.Parse(args)
		if err != nil {
			t.Fatalf("parse %v: %v", args, err)
		}
		out := filepath.Join(t.TempDir(), "out")
		f, _ := os.Create(out)
		stdout := os.Stdout
		os.Stdout = f
		err = k.Run(&cli.Globals)
		os.Stdout = stdout
		f.Close()
		b, _ := os.ReadFile(out)
		return string(b), err
	}
	status := func(out string) authority.RotationStatus {
		t.Helper()
		var st authority.RotationStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status output %q: %v", out, err)
		}
		return st
	}
	out, err := run("authority", "rotate", "status")
	if err != nil {
		t.Fatal(err)
	}
	k1 := status(out).ConfKey.Current
	if out, err = run("authority", "rotate", "conf-key", "prepare"); err != nil {
		t.Fatal(err)
	}
	k2 := status(out).ConfKey.Next
	if k2 == "" || k2 == k1 {
		t.Fatalf("prepare printed %s", out)
	}
	if _, err := run("authority", "rotate", "conf-key", "activate"); err == nil || !strings.Contains(err.Error(), "force to do it anyway") {
		t.Errorf("early activation: %v", err)
	}
	if out, err = run("authority", "rotate", "conf-key", "activate", "--force"); err != nil {
		t.Fatal(err)
	}
	if st := status(out); st.ConfKey.Current != k2 || st.ConfKey.Previous != k1 {
		t.Errorf("after activation: %+v", st.ConfKey)
	}
	if out, err = run("authority", "rotate", "ca", "prepare"); err != nil || status(out).CA.Next == "" {
		t.Errorf("CA prepare: %v %s", err, out)
	}
}
