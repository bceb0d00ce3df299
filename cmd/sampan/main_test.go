package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSandboxCommand runs the README's first command as a newcomer would
// and stops it with SIGTERM.
func TestSandboxCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "sampan")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "sb")
	cmd := exec.Command(bin, "sandbox", "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Everything is described") {
				ready <- all.String()
			}
		}
		close(ready)
	}()
	select {
	case text, ok := <-ready:
		if !ok {
			t.Fatalf("sandbox exited before it was ready; stderr: %s", stderr.String())
		}
		if !strings.Contains(text, "curl -sS -H 'X-Road-Client: VN/GOV/HCMC/one-stop'") {
			t.Errorf("no curl example in the welcome text:\n%s", text)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sandbox not ready after 60s; stderr: %s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); err != nil {
		t.Errorf("sandbox.json: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("sandbox did not stop within 15s of SIGTERM")
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.json")
	os.WriteFile(path, []byte(`{"id":"VN/GOV/MOF/gw1","anchor_file":"a.json","client_listn":"127.0.0.1:1"}`), 0o644)
	cli := &GatewayRunCmd{Config: path, Dir: dir}
	err := cli.Run(&Globals{LogLevel: "error", LogFormat: "text"})
	if err == nil || !strings.Contains(err.Error(), "client_listn") {
		t.Fatalf("err = %v, want it to name the unknown field", err)
	}
}

// TestVersionCommand: `sampan version` names the Go version the binary
// runs on, as text and as JSON.
func TestVersionCommand(t *testing.T) {
	var text, js strings.Builder
	if err := printVersion(&text, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "go "+runtime.Version()) || !strings.HasPrefix(text.String(), "sampan ") {
		t.Errorf("text: %q", text.String())
	}
	if err := printVersion(&js, true); err != nil {
		t.Fatal(err)
	}
	var b struct {
		Version string `json:"version"`
		Go      string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(js.String()), &b); err != nil || b.Version == "" || b.Go != runtime.Version() {
		t.Errorf("json: %q (%v)", js.String(), err)
	}
}
