package ops

import "testing"

// TestCheckExposure: without a token, only loopback addresses pass.
func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:9080", "", true},
		{"[::1]:9080", "", true},
		{"localhost:9080", "", true},
		{"127.0.0.2:0", "", true},
		{":9080", "", false},
		{"0.0.0.0:9080", "", false},
		{"[::]:9080", "", false},
		{"10.0.0.5:9080", "", false},
		{"ops.example.gov.vn:9080", "", false},
		{"10.0.0.5:9080", "/etc/sampan/ops.token", true},
		{"no-port", "", false},
	} {
		if err := CheckExposure(tc.addr, tc.token); (err == nil) != tc.ok {
			t.Errorf("CheckExposure(%q, %q) = %v, want ok %v", tc.addr, tc.token, err, tc.ok)
		}
	}
}
