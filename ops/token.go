package ops

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"unicode"
)

// ReadTokenFile reads a bearer token from a file that only its owner may
// read (mode 0600 or stricter), as key files are. The token is the file's
// content without surrounding white space; it must be at least
// MinTokenLen bytes and hold no white space.
func ReadTokenFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("read token file %s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("read token file %s: mode %v is too open, want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("read token file %s: token shorter than %d bytes", path, MinTokenLen)
	}
	if strings.ContainsFunc(tok, unicode.IsSpace) || strings.ContainsFunc(tok, unicode.IsControl) {
		return "", fmt.Errorf("read token file %s: token holds white space or control characters", path)
	}
	return tok, nil
}

// MinTokenLen is the shortest token ReadTokenFile accepts.
const MinTokenLen = 16

// CheckExposure refuses an operations listener on an address other
// hosts can reach without a token: its metrics and monitoring records
// name clients, services and users. addr is host:port; an empty host
// means every interface.
func CheckExposure(addr, tokenFile string) error {
	if tokenFile != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is reachable from other hosts: set ops_token_file, or listen on loopback", addr)
}

// Mutating guards a handler that changes a daemon's state (a reload, a
// refresh) against callers the bearer token does not stop when the
// listener has none (loopback): a browser's cross-site form or fetch
// (it sends Origin, or Sec-Fetch-Site other than none) and a page
// reaching loopback by DNS rebinding (its Host is a name, not the
// listener's address).
func Mutating(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		site := r.Header.Get("Sec-Fetch-Site")
		if r.Header.Get("Origin") != "" || (site != "" && site != "none") || (host != "localhost" && net.ParseIP(strings.Trim(host, "[]")) == nil) {
			writeJSON(w, http.StatusForbidden, errorBody{"this call changes the daemon's state: call it directly (curl), by the listener's address, not from a web page"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
