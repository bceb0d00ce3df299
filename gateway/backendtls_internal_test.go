package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
)

// A bad backend_tls is refused when the configuration loads, naming the
// field.
func TestBackendTLSValidated(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		b    BackendTLS
		want string
	}{
		{BackendTLS{CertFile: "gw.crt"}, "backend_tls.cert_file, backend_tls.key_file: give both or neither"},
		{BackendTLS{KeyFile: "gw.key"}, "backend_tls.cert_file, backend_tls.key_file: give both or neither"},
		{BackendTLS{CertFile: filepath.Join(dir, "none.crt"), KeyFile: filepath.Join(dir, "none.key")}, "backend_tls.cert_file"},
		{BackendTLS{CAFile: filepath.Join(dir, "none.pem")}, "backend_tls.ca_file"},
		{BackendTLS{CAFile: notPEM}, "holds no PEM certificate"},
	} {
		id, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
		c := &Config{ID: id, AnchorFile: "anchor.json", BackendTLS: tc.b}
		c.SetDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %q", tc.b, err, tc.want)
		}
	}
}
