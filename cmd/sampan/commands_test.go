package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/opmon"
	"github.com/sampan-exchange/sampan/sandbox"
)

// sampan parses args as the binary does and runs the command, returning
// what it wrote to standard output. Parse errors come back as errors.
func sampan(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cli CLI
	k, err := kong.New(&cli, kong.Name("sampan"), kong.Exit(func(int) { t.Fatalf("sampan %v: exited", args) }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := k.Parse(append([]string{"--log-level", "error"}, args...))
	if err != nil {
		return "", err
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	err = kctx.Run(&cli.Globals)
	os.Stdout = stdout
	w.Close()
	return <-out, err
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestAuthorityRunCommand: `sampan authority --config … --dir …` makes
// the anchor and the TLS CA in the data directory, serves a configuration
// that verifies against that anchor, answers on its operations listener,
// stops cleanly on SIGTERM and, started again on the same directory,
// keeps the anchor gateways were given.
func TestAuthorityRunCommand(t *testing.T) {
	dir := t.TempDir()
	listen, opsListen := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "authority.json")
	cfg := fmt.Sprintf(`{"instance": "VN", "listen": %q, "ops_listen": %q,
		"operators": [{"name": "alice", "role": "admin", "token_sha256": %q}]}`, listen, opsListen, authority.HashToken("secret"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")

	run := func() (anchor []byte) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := sampan(t, "authority", "--config", cfgFile, "--dir", data)
			done <- err
		}()
		client, doc := &http.Client{Timeout: 2 * time.Second}, []byte(nil)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			select {
			case err := <-done:
				t.Fatalf("the authority stopped before serving: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the authority did not serve /conf within 30 s")
			}
			ca, err := os.ReadFile(filepath.Join(data, authority.TLSCAFile))
			if err != nil {
				continue
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			resp, err := client.Get("https://" + listen + "/conf")
			if err != nil {
				continue
			}
			doc, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /conf: %d %s", resp.StatusCode, doc)
			}
			break
		}
		anchor, err := os.ReadFile(filepath.Join(data, authority.AnchorFile))
		if err != nil {
			t.Fatalf("no anchor in the data directory: %v", err)
		}
		a, err := conf.ParseAnchor(anchor)
		if err != nil {
			t.Fatal(err)
		}
		c, err := conf.Verify(doc, a)
		if err != nil || c.Instance != "VN" || c.Serial == 0 {
			t.Fatalf("the served configuration: %v, %v", c, err)
		}
		resp, err := http.Get("http://" + opsListen + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("operations listener /healthz: %v %v", resp, err)
		}
		resp.Body.Close()

		// The command's signal context is in place: SIGTERM stops it.
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("stopped with %v; want a clean stop", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the authority did not stop within 15 s of SIGTERM")
		}
		if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
			c.Close()
			t.Fatal("the authority's port still answers after it stopped")
		}
		return anchor
	}
	first := run()
	if again := run(); !bytes.Equal(first, again) {
		t.Error("a restart on the same data directory changed the anchor")
	}
	keys, _ := filepath.Glob(filepath.Join(data, "*.key"))
	if len(keys) == 0 {
		t.Error("no keys in the data directory")
	}
	for _, k := range keys {
		if st, err := os.Stat(k); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", k, st.Mode().Perm(), err)
		}
	}

	// A registry a newer sampan migrated is refused, naming the database
	// and the release to run, and is left as it was.
	reg := filepath.Join(data, "registry.db")
	db, err := sql.Open("sqlite", reg)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO schema_history (version, sampan_version, applied_at) VALUES (%d, 'v9.1.0', '2030-01-01T00:00:00Z')`, v+1),
		fmt.Sprintf(`UPDATE schema_version SET version = %d`, v+1),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	_, err = sampan(t, "authority", "--config", cfgFile, "--dir", data)
	for _, want := range []string{reg, fmt.Sprintf("schema version %d", v+1), fmt.Sprintf("knows, %d", v), "use sampan v9.1.0 or later"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("starting on a newer registry: %v; want it to say %q", err, want)
		}
	}
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Error("the authority serves on a registry it refused")
	}

	// A configuration error names the field; nothing starts.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"instance": "VN", "listn": "127.0.0.1:1"}`), 0o600)
	if _, err := sampan(t, "authority", "--config", bad, "--dir", filepath.Join(dir, "other")); err == nil || !strings.Contains(err.Error(), "listn") {
		t.Errorf("a misspelt field: %v; want it named", err)
	}
	if _, err := sampan(t, "authority", "--dir", data); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("no --config: %v; want the flag named", err)
	}
}

// TestGatewayInitCommand: `sampan gateway init` writes private keys only
// the owner can read and CSRs that parse, are self-signed and name the
// gateway and its member; a second run keeps the keys; a bad --id or
// --members is refused naming the flag, writing nothing.
func TestGatewayInitCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gw")
	out, err := sampan(t, "gateway", "init", "--id", "VN/GOV/MOF/gw1", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "*.key"))
	signKeys, _ := filepath.Glob(filepath.Join(dir, "*", "*.key"))
	keys = append(keys, signKeys...)
	if len(keys) != 2 {
		t.Fatalf("keys %v; want an authentication and a signing key", keys)
	}
	before := map[string][]byte{}
	for _, k := range keys {
		st, err := os.Stat(k)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", k, st.Mode().Perm(), err)
		}
		before[k], _ = os.ReadFile(k)
	}
	csrs, _ := filepath.Glob(filepath.Join(dir, "*.csr"))
	signCSRs, _ := filepath.Glob(filepath.Join(dir, "*", "*.csr"))
	subjects := map[string]bool{}
	for _, p := range append(csrs, signCSRs...) {
		b, _ := os.ReadFile(p)
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s is not PEM", p)
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("%s: %v", p, err)
		}
		subjects[csr.Subject.CommonName] = true
		if !strings.Contains(out, p) {
			t.Errorf("the output does not name %s:\n%s", p, out)
		}
	}
	if !subjects["VN/GOV/MOF/gw1"] || !subjects["VN/GOV/MOF"] || len(subjects) != 2 {
		t.Errorf("CSR subjects %v; want the gateway and its member", subjects)
	}
	for _, want := range []string{`profile "auth"`, `profile "sign"`, "register the gateway"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q:\n%s", want, out)
		}
	}

	if _, err := sampan(t, "gateway", "init", "--id", "VN/GOV/MOF/gw1", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	for k, b := range before {
		if after, _ := os.ReadFile(k); !bytes.Equal(after, b) {
			t.Errorf("a second init replaced %s", k)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		flag string
	}{
		{"id not a gateway", []string{"--id", "VN/GOV/MOF"}, "--id"},
		{"id with a bad instance", []string{"--id", "vn!/GOV/MOF/gw1"}, "--id"},
		{"member a subsystem", []string{"--id", "VN/GOV/MOF/gw2", "--members", "VN/GOV/MOF/registry"}, "--members"},
		{"no id", nil, "--id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := filepath.Join(t.TempDir(), "gw")
			_, err := sampan(t, append([]string{"gateway", "init", "--dir", fresh}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("err = %v; want it to name %s", err, tc.flag)
			}
			if _, err := os.Stat(fresh); err == nil {
				t.Errorf("a refused init created %s", fresh)
			}
		})
	}
}

// TestLogBodyAndTransfersCommands: after real cross-border exchanges in
// the sandbox, `sampan log body` prints the stored response exactly as the
// client received it, and `sampan report transfers` reports the flow with
// the fields a regulator asks for, as CSV and JSON. Unknown ids and an
// empty period are refused with errors that say so.
func TestLogBodyAndTransfersCommands(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	const client, service = "VN/GOV/MPS/cybercrime", "SG/GOV/SPF/anti-scam/scam-reports"
	var dataDir, url string
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/MPS/gw1" {
			dataDir, url = g.DataDir, g.ClientURL
		}
	}
	start := time.Now().UTC().Add(-time.Minute)
	var bodies [][]byte
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, url+"/r1/"+service+"/", nil)
		req.Header.Set("X-Road-Client", client)
		req.Header.Set("X-Road-Id", fmt.Sprintf("scam-%d", i))
		req.Header.Set("X-Road-Purpose", "scam-investigation")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("exchange %d: %d %s", i, resp.StatusCode, b)
		}
		bodies = append(bodies, b)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC().Add(time.Minute)

	got, err := sampan(t, "log", "body", "--dir", dataDir, "--id", "scam-1")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(bodies[1]) {
		t.Errorf("log body = %q; the client received %q", got, bodies[1])
	}
	if req, err := sampan(t, "log", "body", "--dir", dataDir, "--id", "scam-0", "--part", "request"); err != nil || req != "" {
		t.Errorf("the request body of a GET: %q, %v; want it empty", req, err)
	}
	if _, err := sampan(t, "log", "body", "--dir", dataDir, "--id", "no-such-exchange"); err == nil || !strings.Contains(err.Error(), "no record with this X-Road-Id") {
		t.Errorf("an unknown id: %v; want no record", err)
	}
	if _, err := sampan(t, "log", "body", "--dir", dataDir, "--id", "scam-0", "--part", "headers"); err == nil || !strings.Contains(err.Error(), "--part") {
		t.Errorf("a bad part: %v; want --part named", err)
	}

	period := []string{"--dir", dataDir, "--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339)}
	out, err := sampan(t, append([]string{"report", "transfers"}, period...)...)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV %q (%v); want a header and one flow", out, err)
	}
	row := map[string]string{}
	for i, h := range rows[0] {
		row[h] = rows[1][i]
	}
	// The personal data flows from Singapore's provider to Vietnam's
	// client: the provider is the sender, the responses the bytes sent.
	want := map[string]string{
		"gateway": "VN/GOV/MPS/gw1", "side": "consumer",
		"sender": "SG/GOV/SPF/anti-scam", "sender_country": "SG", "recipient": client, "recipient_country": "VN",
		"cross_border": "true", "service": service, "data_class": "confidential", "purpose": "scam-investigation",
		"agreement": "SG-VN-SCAM-2026", "retention_days": "90", "calls": "2", "refused": "0",
		"bytes_to_recipient": fmt.Sprint(len(bodies[0]) + len(bodies[1])), "bytes_to_sender": "0",
	}
	for k, v := range want {
		if row[k] != v {
			t.Errorf("%s = %q; want %q (row %v)", k, row[k], v, row)
		}
	}
	if !strings.Contains(row["data_categories"], "personal") || !strings.Contains(row["references"], "comparable-protection") || row["first_transfer"] == "" {
		t.Errorf("row %v lacks the data categories, the transfer instrument or the period", row)
	}

	js, err := sampan(t, append([]string{"report", "transfers", "--format", "json"}, period...)...)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Flows []map[string]any `json:"flows"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Flows) != 1 {
		t.Fatalf("JSON %s (%v); want one flow", js, err)
	}
	if _, err := sampan(t, "report", "transfers", "--dir", dataDir, "--from", end.Format(time.RFC3339), "--to", start.Format(time.RFC3339)); err == nil ||
		!strings.Contains(err.Error(), "--to must be after --from") {
		t.Errorf("an empty period: %v", err)
	}
	if _, err := sampan(t, "report", "transfers", "--dir", dataDir, "--from", "yesterday", "--to", end.Format(time.RFC3339)); err == nil ||
		!strings.Contains(err.Error(), "--from") {
		t.Errorf("a bad time: %v; want --from named", err)
	}

	// The record index rolled back to its second schema (the first keys)
	// and migrated forward again by the next command keeps every record.
	index := filepath.Join(dataDir, "log", msglog.IndexFile)
	if out, err := sampan(t, "migrate", "down", "--schema", "index", "--db", index, "--to", "2"); err != nil || !strings.Contains(out, "from version 6 to 2") {
		t.Fatalf("migrate down: %q, %v", out, err)
	}
	if got, err := sampan(t, "log", "body", "--dir", dataDir, "--id", "scam-1"); err != nil || got != string(bodies[1]) {
		t.Errorf("log body after a rollback and a migration: %q, %v", got, err)
	}
	if out, err := sampan(t, "migrate", "status", "--schema", "index", "--db", index); err != nil || !strings.Contains(out, "version 6;") {
		t.Errorf("status after migrating forward again: %q, %v", out, err)
	}
	// The other schemas of the gateway, by their names.
	known := map[string]int{"state": len(gateway.StateMigrations()), "opmon": len(opmon.Migrations(false))}
	for schema, file := range map[string]string{"state": "state.db", "opmon": "opmon.db"} {
		out, err := sampan(t, "migrate", "status", "--schema", schema, "--db", filepath.Join(dataDir, file))
		v := strconv.Itoa(known[schema])
		if err != nil || !strings.HasPrefix(out, "schema "+schema+": version "+v+"; this sampan knows up to "+v+"\n") || !strings.Contains(out, "migration 1 applied by sampan") {
			t.Errorf("status of %s: %q, %v", file, out, err)
		}
	}
}

// TestMigrateCommand: `sampan migrate status` shows a schema's version,
// what this sampan knows and who applied each migration; `migrate down`
// rolls back to the version asked, refuses one above the schema's, and
// refuses a database that is not there without creating it.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	db, err := msglog.OpenIndex(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	index := filepath.Join(dir, msglog.IndexFile)
	n := len(msglog.IndexMigrations(false))
	out, err := sampan(t, "migrate", "status", "--schema", "index", "--db", index)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("schema index: version %d; this sampan knows up to %d\n", n, n); !strings.HasPrefix(out, want) {
		t.Errorf("status %q; want it to start %q", out, want)
	}
	if strings.Count(out, "applied by sampan ") != n {
		t.Errorf("status %q; want the %d migrations with the sampan that applied them", out, n)
	}
	if _, err := sampan(t, "migrate", "down", "--schema", "index", "--db", index, "--to", fmt.Sprint(n+1)); err == nil || !strings.Contains(err.Error(), "--to") {
		t.Errorf("rolling back up: %v; want --to named", err)
	}
	if out, err := sampan(t, "migrate", "down", "--schema", "index", "--db", index, "--to", fmt.Sprint(n-1)); err != nil || !strings.Contains(out, fmt.Sprintf("from version %d to %d", n, n-1)) {
		t.Fatalf("migrate down: %q, %v", out, err)
	}
	if out, _ := sampan(t, "migrate", "status", "--schema", "index", "--db", index); !strings.Contains(out, fmt.Sprintf("version %d;", n-1)) || strings.Count(out, "applied by") != n-1 {
		t.Errorf("status after the rollback: %q", out)
	}
	missing := filepath.Join(dir, "none.db")
	if _, err := sampan(t, "migrate", "status", "--schema", "state", "--db", missing); err == nil || !strings.Contains(err.Error(), "--db") {
		t.Errorf("a missing database: %v; want --db named", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("status created the missing database")
	}
	if _, err := sampan(t, "migrate", "status", "--schema", "registry", "--db", "postgres://sampan@/x?host=/nonexistent"); err == nil || !strings.Contains(err.Error(), "SQLite only") {
		t.Errorf("a registry in PostgreSQL: %v", err)
	}
	if _, err := sampan(t, "migrate", "status", "--schema", "ledger", "--db", index); err == nil || !strings.Contains(err.Error(), "--schema") {
		t.Errorf("an unknown schema: %v; want --schema named", err)
	}
}

// TestReleaseStampsVersion: scripts/release.sh, run in a clean checkout
// at an annotated vMAJOR.MINOR.PATCH tag, builds a binary whose `sampan
// version` says the tag, and lists it in SHA256SUMS with its hash; it
// refuses a lightweight tag, a tag out of the scheme and an untagged HEAD.
func TestReleaseStampsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	repo := filepath.Join(t.TempDir(), "repo")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=release", "-c", "user.email=release@example.org"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(top)), repo).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	// The script as it stands in this tree, committed in the clone.
	script, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(top)), "scripts", "release.sh"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(repo, "scripts"), 0o755)
	if err := os.WriteFile(filepath.Join(repo, "scripts", "release.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	git("add", "scripts/release.sh")
	git("commit", "-q", "--allow-empty", "-m", "release script")
	host := runtime.GOOS + "/" + runtime.GOARCH
	release := func() (string, error) {
		cmd := exec.Command("sh", "scripts/release.sh", filepath.Join(t.TempDir(), "dist"), host)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	git("tag", "v0.98.0") // lightweight
	if out, err := release(); err == nil || !strings.Contains(out, "not annotated") {
		t.Errorf("a lightweight tag: %v\n%s", err, out)
	}
	git("tag", "-a", "-m", "not a release", "release-1", "HEAD")
	git("tag", "-d", "v0.98.0")
	if out, err := release(); err == nil || !strings.Contains(out, "not vMAJOR.MINOR.PATCH") {
		t.Errorf("a tag out of the scheme: %v\n%s", err, out)
	}
	git("tag", "-d", "release-1")
	if out, err := release(); err == nil || !strings.Contains(out, "no tag") {
		t.Errorf("an untagged HEAD: %v\n%s", err, out)
	}

	git("tag", "-a", "-m", "sampan v0.99.0", "v0.99.0")
	dist := filepath.Join(t.TempDir(), "dist")
	cmd := exec.Command("sh", "scripts/release.sh", dist, host)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	bin := filepath.Join(dist, "sampan-v0.99.0-"+runtime.GOOS+"-"+runtime.GOARCH)
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version, Commit string
	}
	head := strings.TrimSpace(git("rev-parse", "HEAD"))
	if err := json.Unmarshal(out, &v); err != nil || v.Version != "v0.99.0" || v.Commit != head {
		t.Errorf("sampan version --json = %s (%v); want v0.99.0 at %s", out, err, head)
	}
	b, _ := os.ReadFile(bin)
	sum := sha256.Sum256(b)
	sums, _ := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if want := hex.EncodeToString(sum[:]) + "  " + filepath.Base(bin) + "\n"; string(sums) != want {
		t.Errorf("SHA256SUMS = %q; want %q", sums, want)
	}
}

// TestUpgradingDocListsSchemaVersions: the last row of the schema table
// in docs/upgrading.md is the versions this code migrates to, so that a
// new migration comes with its line for the release that carries it.
func TestUpgradingDocListsSchemaVersions(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "upgrading.md"))
	if err != nil {
		t.Fatal(err)
	}
	var last []string
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "| release | registry | gateway state | record index | monitoring records |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|---"):
		case inTable && strings.HasPrefix(line, "|"):
			last = strings.Split(strings.Trim(line, "| "), "|")
		case inTable:
			inTable = false
		}
	}
	if len(last) != 5 {
		t.Fatalf("no schema table with a release row in docs/upgrading.md (last row %q)", last)
	}
	if n, m := len(msglog.IndexMigrations(false)), len(msglog.IndexMigrations(true)); n != m {
		t.Errorf("the record index has %d SQLite and %d PostgreSQL migrations", n, m)
	}
	if n, m := len(opmon.Migrations(false)), len(opmon.Migrations(true)); n != m {
		t.Errorf("the monitoring records have %d SQLite and %d PostgreSQL migrations", n, m)
	}
	want := []int{len(authority.Migrations()), len(gateway.StateMigrations()), len(msglog.IndexMigrations(false)), len(opmon.Migrations(false))}
	for i, w := range want {
		if got := strings.TrimSpace(last[i+1]); got != fmt.Sprint(w) {
			t.Errorf("docs/upgrading.md, release %q, column %d: %s; the code migrates to %d", strings.TrimSpace(last[0]), i+2, got, w)
		}
	}
}
