package bench

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

func newFloorPKI() (*floorPKI, error) {
	ca, err := pki.NewCA("bench floor CA")
	if err != nil {
		return nil, err
	}
	issue := func(p pki.Profile) (tls.Certificate, error) {
		k, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			return tls.Certificate{}, err
		}
		c, err := ca.Issue(k.Public(), p, pki.Template{CommonName: "floor", DNSNames: []string{floorName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			return tls.Certificate{}, err
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
// anything else must be an nginx binary.
func findNginx(opt string) (string, error) {
	switch opt {
	case NginxOff:
		return "", nil
	case "":
		if p, err := exec.LookPath("nginx"); err == nil {
			return p, nil
		}
		if p, err := exec.LookPath("/usr/sbin/nginx"); err == nil {
			return p, nil
		}
		return "", nil
	}
	p, err := exec.LookPath(opt)
	if err != nil {
		return "", fmt.Errorf("nginx: %w", err)
	}
	return p, nil
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

// nginxConf is the server's configuration: %[1]s its directory, %[2]s
// and %[3]s the outer and inner proxies' addresses, %[4]s the backend's,
// %[5]s the inner proxy's certificate name.
const nginxConf = `# sampan bench: a second floor, written for one run.
daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	keepalive_requests 1000000;
	upstream inner { server %[3]s; keepalive 256; }
	upstream backend { server %[4]s; keepalive 256; }
	server {
		listen %[2]s;
		location / {
			proxy_pass https://inner;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_ssl_protocols TLSv1.3;
			proxy_ssl_certificate %[1]s/client.pem;
			proxy_ssl_certificate_key %[1]s/client.key;
			proxy_ssl_trusted_certificate %[1]s/ca.pem;
			proxy_ssl_verify on;
			proxy_ssl_name %[5]s;
			proxy_ssl_server_name on;
		}
	}
	server {
		listen %[3]s ssl;
		ssl_protocols TLSv1.3;
		ssl_certificate %[1]s/server.pem;
		ssl_certificate_key %[1]s/server.key;
		ssl_client_certificate %[1]s/ca.pem;
		ssl_verify_client on;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`

// startNginx runs nginx as the second floor in front of backend
// (host:port) and waits until both its proxies answer.
func startNginx(bin, backend string, p *floorPKI) (_ *nginxFloor, err error) {
	dir, err := os.MkdirTemp("", "sampan-bench-nginx-")
	if err != nil {
		return nil, err
	}
	// nginx's workers, when started by root, run as an unprivileged user
	// and must reach their temporary directories; the keys stay 0600 and
	// are read by the master alone.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n := &nginxFloor{dir: dir, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	writeKey := func(name string, k crypto.PrivateKey) error {
		s, ok := k.(crypto.Signer)
		if !ok {
			return fmt.Errorf("nginx: a %T is not a signing key", k)
		}
		return pki.WriteKey(filepath.Join(dir, name), s)
	}
	for name, b := range map[string][]byte{
		"ca.pem":     pki.EncodeCert(p.ca.Cert.Raw),
		"server.pem": pki.EncodeCert(p.server.Leaf.Raw),
		"client.pem": pki.EncodeCert(p.client.Leaf.Raw),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(writeKey("server.key", p.server.PrivateKey), writeKey("client.key", p.client.PrivateKey)); err != nil {
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
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, outer, inner, backend, floorName), 0o644); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	v := exec.Command(bin, "-v")
	v.Stderr = &out
	if err := v.Run(); err != nil {
		return nil, fmt.Errorf("nginx: %s -v: %w", bin, err)
	}
	n.version = strings.TrimPrefix(strings.TrimSpace(out.String()), "nginx version: ")
	n.cmd = exec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	n.cmd.SysProcAttr = childAttr()
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	n.url, n.inner = "http://"+outer, inner
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range []string{outer, inner} {
		for {
			c, derr := net.DialTimeout("tcp", addr, time.Second)
			if derr == nil {
				c.Close()
				break
			}
			select {
			case <-n.exited:
				return nil, fmt.Errorf("nginx exited at start (%v): %s", n.err, n.errorLog())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("nginx: %s does not answer after 10s: %s", addr, n.errorLog())
			}
		}
	}
	return n, nil
}

// errorLog is the end of nginx's error log, for an error message.
func (n *nginxFloor) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "its error log is empty"
	}
	return string(b)
}

// cpu is the CPU time nginx's processes have used.
func (n *nginxFloor) cpu() time.Duration {
	return treeCPU(n.cmd.Process.Pid)
}

// stop ends nginx (its workers finish with it) and removes its files.
func (n *nginxFloor) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
	}
	os.RemoveAll(n.dir)
}

// freePort returns a loopback address no one listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
