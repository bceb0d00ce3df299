package authority

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

func isHex64(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// checkAddress checks a gateway's peer address: host:port, where host is
// a DNS name (letters, digits and '-' in dot-separated labels) or an IP
// address that names one host, and port a decimal number from 1 to 65535.
func checkAddress(addr string) error {
	if len(addr) > 262 {
		return fmt.Errorf("%q is longer than a host name and port can be", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port[0] < '1' || port[0] > '9' || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("%q has no valid port (1 to 65535)", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast() {
			return fmt.Errorf("%q does not name one host", addr)
		}
		return nil
	}
	if strings.Contains(addr, "[") {
		return fmt.Errorf("%q has a bracketed host that is not an IPv6 address", addr)
	}
	if !isDNSName(host) {
		return fmt.Errorf("%q: host is neither an IP address nor a DNS name", addr)
	}
	return nil
}

// isDNSName reports whether s is a host name in the letters-digits-hyphen
// form, with an optional final dot.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// An all-numeric last label would read as an IP address.
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}
