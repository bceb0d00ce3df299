package bench

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sampan-exchange/sampan/pki"
)

// NginxOff, as Options.Nginx, measures no nginx floor even when nginx is
// installed.
const NginxOff = "off"

// floorName is the name the floors' server certificates carry and their
// clients check.
const floorName = "floor.bench.invalid"

// floorPKI is a throwaway authority for a floor: a CA, a server
// certificate and a client certificate it issued.
type floorPKI struct {
	ca             *pki.CA
	server, client tls.Certificate
}

func newFloorPKI(name string) (*floorPKI, error) {
	ca, err := pki.NewCA(name)
	if err != nil {
		return nil, fmt.Errorf("make the floor's CA: %w", err)
	}
	issue := func(p pki.Profile) (tls.Certificate, error) {
		k, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("make a floor key: %w", err)
		}
		c, err := ca.Issue(k.Public(), p, pki.Template{CommonName: "floor", DNSNames: []string{floorName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("issue a floor certificate: %w", err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}, nil
	}
	f := &floorPKI{ca: ca}
	if f.server, err = issue(pki.ProfileServer); err != nil {
		return nil, err
	}
	if f.client, err = issue(pki.ProfileAuth); err != nil {
		return nil, err
	}
	return f, nil
}

// findNginx resolves Options.Nginx to a binary, or "" for none: "off"
// is none, "" is nginx on the PATH or in /usr/sbin when installed, and
// anything else must be an nginx binary. named tells whether it was
// asked for by name.
func findNginx(opt string) (bin string, named bool, err error) {
	switch opt {
	case NginxOff:
		return "", false, nil
	case "":
		for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
			if p, err := exec.LookPath(p); err == nil {
				return p, false, nil
			}
		}
		return "", false, nil
	}
	p, err := exec.LookPath(opt)
	if err != nil {
		return "", true, fmt.Errorf("find nginx: %w", err)
	}
	return p, true, nil
}

// nginxSetup is what the nginx floor is started with.
type nginxSetup struct {
	bin     string
	backend string // host:port
	conns   int    // the load's connections, which nginx's limits must hold
	pki     *floorPKI
	// upstream, when set, is where the outer proxy sends requests instead
	// of the inner proxy (tests).
	upstream string
}

// nginxFloor is the second floor: two nginx reverse proxies, in one nginx
// server, chained over mutual TLS 1.3 in front of the backend, as the
// Go floor is. nginx's proxy module speaks HTTP/1.1 to its upstreams,
// so the link between the two is HTTP/1.1 whatever the gateways speak.
type nginxFloor struct {
	url     string // the outer proxy, plain HTTP
	inner   string // host:port of the inner proxy (mutual TLS)
	version string
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // why nginx exited (once exited is closed)
}

// nginxConf is the server's configuration. Both proxies stream bodies
// of any size, as httputil.ReverseProxy does, and keep their upstream
// connections.
const nginxConf = `# sampan bench: a second floor, written for one run.
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile {{files}};
pid "{{dir}}/nginx.pid";
error_log "{{dir}}/error.log" warn;
events { worker_connections {{conns}}; }
http {
	access_log off;
	client_body_temp_path "{{dir}}/body";
	proxy_temp_path "{{dir}}/proxy";
{{temps}}	keepalive_requests 1000000;
	client_max_body_size 0;
	proxy_request_buffering off;
	proxy_buffering off;
	proxy_http_version 1.1;
	upstream inner { server {{upstream}}; keepalive 256; keepalive_requests 1000000; }
	upstream backend { server {{backend}}; keepalive 256; keepalive_requests 1000000; }
	server {
		listen {{outer}};
		location / {
			proxy_pass https://inner;
			proxy_set_header Connection "";
			proxy_ssl_protocols TLSv1.3;
			proxy_ssl_certificate "{{dir}}/client.pem";
			proxy_ssl_certificate_key "{{dir}}/client.key";
			proxy_ssl_trusted_certificate "{{dir}}/ca.pem";
			proxy_ssl_verify on;
			proxy_ssl_name {{name}};
			proxy_ssl_server_name on;
		}
	}
	server {
		listen {{inner}} ssl;
		ssl_protocols TLSv1.3;
		ssl_certificate "{{dir}}/server.pem";
		ssl_certificate_key "{{dir}}/server.key";
		ssl_client_certificate "{{dir}}/ca.pem";
		ssl_verify_client on;
		location / {
			proxy_pass http://backend;
			proxy_set_header Connection "";
		}
	}
}
`

// nginxBuild is what `nginx -V` says: the version, and the modules
// that need temporary directories of their own.
type nginxBuild struct {
	version    string // "nginx/1.22.1"
	errorLogOK bool   // -e is understood (1.19.5 and later)
	temps      []string
}

func inspectNginx(ctx context.Context, bin string) (nginxBuild, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	v := exec.CommandContext(ctx, bin, "-V")
	v.Stdout, v.Stderr = &out, &out
	if err := v.Run(); err != nil {
		return nginxBuild{}, fmt.Errorf("run %s -V: %w", bin, err)
	}
	text := out.String()
	line, _, _ := strings.Cut(text, "\n")
	ver, ok := strings.CutPrefix(strings.TrimSpace(line), "nginx version: ")
	if !ok {
		return nginxBuild{}, fmt.Errorf("run %s -V: not nginx (%q)", bin, line)
	}
	b := nginxBuild{version: ver}
	// nginx/1.22.1 (Ubuntu), openresty/1.21.4.1 and the like.
	var n [3]int
	if _, num, ok := strings.Cut(ver, "/"); ok {
		if f := strings.Fields(num); len(f) > 0 {
			for i, part := range strings.SplitN(f[0], ".", 4) {
				if i < 3 {
					n[i], _ = strconv.Atoi(part)
				}
			}
		}
	}
	atLeast := func(a, b, c int) bool {
		return n[0] > a || n[0] == a && (n[1] > b || n[1] == b && n[2] >= c)
	}
	// keepalive_requests in an upstream block came with 1.15.3.
	if !atLeast(1, 15, 3) {
		return nginxBuild{}, fmt.Errorf("nginx %q: the floor needs nginx 1.15.3 or later, built with OpenSSL 1.1.1 or later", ver)
	}
	b.errorLogOK = atLeast(1, 19, 5)
	for _, m := range []string{"fastcgi", "uwsgi", "scgi"} {
		if !strings.Contains(text, "--without-http_"+m+"_module") {
			b.temps = append(b.temps, m)
		}
	}
	return b, nil
}

// startNginx runs nginx as the second floor and waits until an exchange
// goes through it.
func startNginx(ctx context.Context, s nginxSetup) (_ *nginxFloor, err error) {
	build, err := inspectNginx(ctx, s.bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sampan-bench-nginx-")
	if err != nil {
		return nil, fmt.Errorf("make nginx's directory: %w", err)
	}
	n := &nginxFloor{dir: dir, version: build.version, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	// The directory goes into nginx's configuration in quotes, where these
	// would end the string or name a variable.
	if strings.ContainsAny(dir, `\"$;{}`) {
		return nil, fmt.Errorf("start nginx: its directory %q holds a character its configuration cannot quote (set TMPDIR elsewhere)", dir)
	}
	// nginx's workers, when started by root, run as an unprivileged user
	// and must reach their temporary directories; the keys stay 0600 and
	// are read by the master alone, as it reads its configuration.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open nginx's directory to its workers: %w", err)
	}
	writeKey := func(name string, k crypto.PrivateKey) error {
		sg, ok := k.(crypto.Signer)
		if !ok {
			return fmt.Errorf("write %s: a %T is not a signing key", name, k)
		}
		return pki.WriteKey(filepath.Join(dir, name), sg)
	}
	for name, b := range map[string][]byte{
		"ca.pem":     pki.EncodeCert(s.pki.ca.Cert.Raw),
		"server.pem": pki.EncodeCert(s.pki.server.Leaf.Raw),
		"client.pem": pki.EncodeCert(s.pki.client.Leaf.Raw),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("write nginx's %s: %w", name, err)
		}
	}
	if err := errors.Join(writeKey("server.key", s.pki.server.PrivateKey), writeKey("client.key", s.pki.client.PrivateKey)); err != nil {
		return nil, err
	}
	outer, err := freePort()
	if err != nil {
		return nil, err
	}
	inner, err := freePort()
	if err != nil {
		return nil, err
	}
	upstream := inner
	if s.upstream != "" {
		upstream = s.upstream
	}
	var temps strings.Builder
	for _, m := range build.temps {
		fmt.Fprintf(&temps, "\t%s_temp_path \"%s/%s\";\n", m, dir, m)
	}
	// Each exchange under way holds up to four descriptors in one server:
	// the client's, the outer proxy's to the inner, the inner's side of
	// it, and the inner proxy's to the backend.
	conns := max(8192, 4*s.conns+1024)
	conf := strings.NewReplacer("{{dir}}", dir, "{{files}}", strconv.Itoa(fileLimit(2*conns)), "{{conns}}", strconv.Itoa(conns),
		"{{temps}}", temps.String(), "{{upstream}}", upstream, "{{backend}}", s.backend, "{{outer}}", outer,
		"{{inner}}", inner, "{{name}}", floorName).Replace(nginxConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write nginx's configuration: %w", err)
	}
	args := []string{"-p", dir, "-c", confPath}
	if build.errorLogOK {
		// Before it reads its configuration, nginx writes to its built-in
		// error log, which may be elsewhere and not writable.
		args = append([]string{"-e", filepath.Join(dir, "error.log")}, args...)
	}
	n.cmd = exec.Command(s.bin, args...)
	n.cmd.SysProcAttr = childAttr()
	n.cmd.WaitDelay = 2 * time.Second
	var early bytes.Buffer
	n.cmd.Stderr = &limitedWriter{w: &early, n: 4096}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	n.url, n.inner = "http://"+outer, inner
	// Ready once an exchange goes through both proxies and nginx is still
	// running (a port taken meanwhile by another process would answer a
	// bare connection).
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/echo", strings.NewReader("ready"))
		resp, perr := client.Do(req)
		if perr == nil {
			// nginx answers once it is listening, its configuration read:
			// anything but the echo is final.
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil || resp.StatusCode != http.StatusOK || string(b) != "ready" {
				return nil, fmt.Errorf("start nginx: an exchange through it was answered %s (%v): %s", resp.Status, rerr, n.errorLog())
			}
			if err := n.alive(); err != nil {
				return nil, err
			}
			return n, nil
		}
		select {
		case <-n.exited:
			// What nginx says before it reads its configuration goes to
			// stderr and to the error log both.
			msg := n.errorLog()
			if len(bytes.TrimSpace(early.Bytes())) > 0 {
				msg = string(bytes.TrimSpace(early.Bytes()))
			}
			return nil, fmt.Errorf("start nginx: it exited (%v): %s", n.err, msg)
		case <-ctx.Done():
			if cerr := context.Cause(ctx); !errors.Is(cerr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("start nginx: %w", cerr)
			}
			return nil, fmt.Errorf("start nginx: no exchange through it after 10s (%v): %s", perr, n.errorLog())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alive reports why nginx is no longer running, if it is not.
func (n *nginxFloor) alive() error {
	select {
	case <-n.exited:
		return fmt.Errorf("nginx exited (%v): %s", n.err, n.errorLog())
	default:
		return nil
	}
}

// errorLog is the end of nginx's error log, for an error message.
func (n *nginxFloor) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(its error log is empty)"
	}
	return string(b)
}

// cpu is the CPU time nginx's processes have used.
func (n *nginxFloor) cpu() time.Duration {
	return treeCPU(n.cmd.Process.Pid)
}

// stop ends nginx, its workers with it, and removes its files.
func (n *nginxFloor) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		// SIGTERM: the master stops its workers and exits. Whatever is
		// left of its group after that (workers of a master that died) is
		// killed.
		pid := n.cmd.Process.Pid
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
		killGroup(pid)
	}
	os.RemoveAll(n.dir)
}

// freePort returns a loopback address no one listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
