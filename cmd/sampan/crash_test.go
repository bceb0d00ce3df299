package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestCrashKeepsAcknowledgedExchanges kills the whole sandbox (all its
// gateways at once) with SIGKILL again and again during sustained
// traffic. Afterwards every exchange whose caller saw success must be in
// the logs of both its gateways, and the logs must verify.
func TestCrashKeepsAcknowledgedExchanges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly")
	}
	bin := filepath.Join(t.TempDir(), "sampan")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "sb")
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "sandbox", "--dir", dir)
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ok := false
			for sc.Scan() {
				if !ok && strings.HasPrefix(sc.Text(), "Everything is described") {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				t.Fatal("sandbox exited before it was ready")
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatal("sandbox not ready in 60s")
		}
		return cmd
	}
	cmd := start()
	var m sandbox.Manifest
	b, err := os.ReadFile(filepath.Join(dir, "sandbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &m)
	var url, hcmcDir, mofDir string
	for _, g := range m.Gateways {
		switch g.ID {
		case "VN/GOV/HCMC/gw1":
			url, hcmcDir = g.ClientURL, g.DataDir
		case "VN/GOV/MOF/gw1":
			mofDir = g.DataDir
		}
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	attempts := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodGet, url+"/r1/VN/GOV/MOF/business-registry/companies/0100109106", nil)
				req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
				req.Header.Set("X-Road-Id", id)
				resp, err := client.Do(req)
				mu.Lock()
				attempts++
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 200 && strings.Contains(string(body), "Viettel") {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	const kills = 5
	for range kills {
		time.Sleep(700 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cmd = start() // reuses the directory, as after a crash
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final graceful stop: %v", err)
	}
	t.Logf("%d kills, %d exchanges attempted, %d acknowledged", kills, attempts, len(acked))
	if len(acked) == 0 {
		t.Fatal("no exchange succeeded")
	}
	for _, d := range []string{hcmcDir, mofDir} {
		logged := map[string]bool{}
		var lmu sync.Mutex
		if _, err := msglog.Verify(t.Context(), filepath.Join(d, "log"), "", func(r *msglog.Record) {
			lmu.Lock()
			logged[r.XRoadID] = true
			lmu.Unlock()
		}); err != nil {
			t.Fatalf("%s: log does not verify after the crashes: %v", d, err)
		}
		missing := 0
		for id := range acked {
			if !logged[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged exchanges are not in the log", filepath.Base(d), missing, len(acked))
		}
	}
}
