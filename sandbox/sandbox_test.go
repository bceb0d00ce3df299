package sandbox_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/sandbox"
	"github.com/sampan-exchange/sampan/soap"
)

func readManifest(t *testing.T, dir string) map[string][]map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "sandbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string][]map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("sandbox.json: %v", err)
	}
	return m
}

// callExamples calls every service's example path as its example client,
// through that client's gateway, and wants 200.
func callExamples(t *testing.T, m sandbox.Manifest) {
	t.Helper()
	urlOf := map[string]string{}
	for _, g := range m.Gateways {
		for _, c := range g.Clients {
			urlOf[c] = g.ClientURL
		}
	}
	for _, s := range m.Services {
		if s.Protocol == "soap" {
			for _, msg := range s.ExampleMessages {
				callSOAPExample(t, m, s.ID, msg)
			}
			continue
		}
		url, ok := urlOf[s.ExampleClient]
		if !ok {
			t.Errorf("%s: example client %q is served by no gateway", s.ID, s.ExampleClient)
			continue
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/r1/"+s.ID+s.ExamplePath, nil)
		req.Header.Set("X-Road-Client", s.ExampleClient)
		if s.ExamplePurpose != "" {
			req.Header.Set("X-Road-Purpose", s.ExamplePurpose)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s%s as %s: status %d, body %s", s.ID, s.ExamplePath, s.ExampleClient, resp.StatusCode, b)
		}
	}
}

// callSOAPExample posts an example SOAP message through its client's
// gateway (over HTTPS with the client's certificate where its connection
// asks for one) and wants the service's answer, with requestHash.
func callSOAPExample(t *testing.T, m sandbox.Manifest, svc string, msg sandbox.ManifestSOAPMessage) {
	t.Helper()
	var url string
	hc := http.DefaultClient
	for _, g := range m.Gateways {
		for _, c := range g.ClientConnections {
			if c.Subsystem != msg.Client {
				continue
			}
			url = g.ClientURL
			if c.CertFile != "" {
				cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
				if err != nil {
					t.Fatal(err)
				}
				ca, err := os.ReadFile(g.ClientTLSCAFile)
				if err != nil {
					t.Fatal(err)
				}
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(ca)
				url = g.ClientTLSURL
				hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
			}
		}
	}
	if url == "" {
		t.Errorf("%s: example client %q is served by no gateway", svc, msg.Client)
		return
	}
	body, err := os.ReadFile(msg.File)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", msg.ContentType)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	env, err := soap.Parse(b, soap.Limits{})
	if resp.StatusCode != http.StatusOK || err != nil || env.Fault != nil || env.Header.RequestHash == nil {
		t.Errorf("%s (%s) as %s through its gateway: status %d, %v\n%s", svc, filepath.Base(msg.File), msg.Client, resp.StatusCode, err, b)
	}
}

func TestSandboxStartAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := sb.Manifest
	callExamples(t, first)
	if err := sb.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	m := readManifest(t, dir)
	for key, fields := range map[string][]string{
		"authorities": {"instance", "url", "anchor_file", "tls_ca_file"},
		"gateways":    {"id", "instance", "client_url", "clients"},
		"services":    {"id", "provider_gateway", "example_path", "data_class", "protocol"},
	} {
		if len(m[key]) == 0 {
			t.Fatalf("sandbox.json has no %s", key)
		}
		for _, e := range m[key] {
			for _, f := range fields {
				if _, ok := e[f]; !ok {
					t.Errorf("sandbox.json %s entry %v lacks %q", key, e["id"], f)
				}
			}
		}
	}
	checkSOAPManifest(t, first)
	if len(first.Gateways) < 2 {
		t.Errorf("%d gateways, want at least 2", len(first.Gateways))
	}
	instances := map[string]bool{}
	for _, a := range first.Authorities {
		instances[a.Instance] = true
	}
	if !instances["VN"] || !instances["SG"] {
		t.Errorf("authorities of %v, want VN and SG", instances)
	}

	// Every private key is readable by its owner only.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".key") {
			fi, _ := d.Info()
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
		return nil
	})

	// The second start reuses the directory: same addresses, same keys.
	sb2, err := sandbox.Start(t.Context(), sandbox.Options{Dir: dir})
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	defer sb2.Close()
	for i, g := range sb2.Manifest.Gateways {
		if g.ClientURL != first.Gateways[i].ClientURL || g.PeerAddr != first.Gateways[i].PeerAddr {
			t.Errorf("gateway %s moved from %s to %s", g.ID, first.Gateways[i].ClientURL, g.ClientURL)
		}
	}
	callExamples(t, sb2.Manifest)
	runAuthorityExamples(t, sb2)
}

// runAuthorityExamples runs the printed curl commands for the
// authorities, which must trust the authority's TLS CA (tls_ca_file)
// and nothing else, and wants them to succeed.
func runAuthorityExamples(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	var out strings.Builder
	sb.PrintWelcome(&out)
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "curl") && strings.Contains(l, "--cacert") && !strings.Contains(l, "X-Road-Client") && !strings.Contains(l, "--data-binary") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) != 2*len(sb.Manifest.Authorities) {
		t.Fatalf("%d curl examples for the authorities, want 2 each:\n%s", len(lines), out.String())
	}
	for _, a := range sb.Manifest.Authorities {
		if a.TLSCAFile == "" || a.TLSCAFile == a.CAFile {
			t.Errorf("%s: tls_ca_file %q, want the authority's own TLS CA", a.Instance, a.TLSCAFile)
		}
		n := 0
		for _, l := range lines {
			if strings.Contains(l, a.URL) {
				n++
				if !strings.Contains(l, "--cacert "+a.TLSCAFile+" ") {
					t.Errorf("%s: %q does not trust %s", a.Instance, l, a.TLSCAFile)
				}
			}
		}
		if n != 2 {
			t.Errorf("%s: %d curl examples", a.Instance, n)
		}
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed: the examples are not run")
		return
	}
	for _, l := range lines {
		cmd := exec.CommandContext(t.Context(), "sh", "-c", l)
		cmd.Dir = t.TempDir()
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", l, err, got)
			continue
		}
		if !strings.Contains(string(got), `"instance"`) && !strings.Contains(string(got), "Certificate Revocation List") {
			t.Errorf("%s: unexpected output\n%s", l, got)
		}
	}
}

func TestSandboxRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sandbox.Start(t.Context(), sandbox.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v, want a refusal of a non-empty directory", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Error("the directory was changed")
	}
}

func TestSandboxSecondInstanceInSameDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	_, err = sandbox.Start(t.Context(), sandbox.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "another sandbox") {
		t.Fatalf("err = %v, want a clear refusal", err)
	}
	// The first one still works.
	callExamples(t, sb.Manifest)
}

func TestFailedFirstStartLeavesNothing(t *testing.T) {
	// An impossible setting fails the start after files were made.
	bad := sandbox.Options{ConfValidity: 30 * time.Second, ConfInterval: time.Minute}

	fresh := filepath.Join(t.TempDir(), "sb")
	bad.Dir = fresh
	if _, err := sandbox.Start(t.Context(), bad); err == nil {
		t.Fatal("start succeeded")
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", fresh, err)
	}

	chosen := t.TempDir() // empty, made by the user
	bad.Dir = chosen
	if _, err := sandbox.Start(t.Context(), bad); err == nil {
		t.Fatal("start succeeded")
	}
	if entries, err := os.ReadDir(chosen); err != nil || len(entries) != 0 {
		t.Errorf("user's directory: %d entries left, err %v", len(entries), err)
	}
}

// checkSOAPManifest: the SOAP services are listed with their protocol,
// WSDL (addressed to the example client's gateway) and example
// envelope, which parses and names the example client and the service;
// the welcome prints a curl command for each SOAP example it mentions.
func checkSOAPManifest(t *testing.T, m sandbox.Manifest) {
	t.Helper()
	gatewayURL := map[string]string{}
	for _, g := range m.Gateways {
		for _, c := range g.Clients {
			gatewayURL[c] = g.ClientURL
		}
	}
	soapServices := 0
	for _, s := range m.Services {
		switch s.Protocol {
		case "rest":
			if s.ExampleEnvelope != "" || s.WSDLFile != "" {
				t.Errorf("%s: a REST service with SOAP examples", s.ID)
			}
			continue
		case "soap":
		default:
			t.Errorf("%s: protocol %q", s.ID, s.Protocol)
			continue
		}
		soapServices++
		b, err := os.ReadFile(s.ExampleEnvelope)
		if err != nil {
			t.Fatalf("%s: example_envelope: %v", s.ID, err)
		}
		env, err := soap.ParseRequest(b, soap.Limits{})
		if err != nil {
			t.Fatalf("%s: example_envelope %s: %v", s.ID, s.ExampleEnvelope, err)
		}
		client, _ := env.Header.Client.Ident()
		svc, _ := env.Header.Service.Ident()
		if client.String() != s.ExampleClient || svc.String() != s.ID+"/"+s.ServiceVersion {
			t.Errorf("%s: example envelope from %s to %s", s.ID, client, svc)
		}
		wsdl, err := os.ReadFile(s.WSDLFile)
		if err != nil {
			t.Fatalf("%s: wsdl_file: %v", s.ID, err)
		}
		if !strings.Contains(string(wsdl), `location="`+gatewayURL[s.ExampleClient]+`/"`) {
			t.Errorf("%s: the WSDL is not addressed to %s's gateway %s", s.ID, s.ExampleClient, gatewayURL[s.ExampleClient])
		}
	}
	if soapServices != 2 {
		t.Errorf("%d SOAP services in sandbox.json, want 2", soapServices)
	}
	var out strings.Builder
	(&sandbox.Sandbox{Manifest: m}).PrintWelcome(&out)
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if _, rest, ok := strings.Cut(l, "--data-binary @"); ok {
			lines[filepath.Base(strings.Fields(rest)[0])] = l
		}
	}
	for file, want := range map[string]string{
		"getCompany.xml":                     "text/xml",
		"getCompany-cross-border.xml":        "--cert ",
		"sendDocument-swa.mime":              `type="text/xml"; boundary=`,
		"sendDocument-mtom.mime":             `start-info="text/xml"`,
		"sendDocument-cross-border-swa.mime": "https://",
	} {
		if !strings.Contains(lines[file], want) {
			t.Errorf("the welcome's curl for %s %q lacks %s", file, lines[file], want)
		}
	}
}
