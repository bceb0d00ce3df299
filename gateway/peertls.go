package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// errPeerAuth is wrapped by every failure to authenticate another gateway.
var errPeerAuth = errors.New("peer gateway authentication failed")

// checkPeer authenticates the other side of a gateway-to-gateway TLS
// connection. The certificate names a gateway, and so an instance; it
// must chain to a CA of that instance's configuration (never another's),
// not be revoked there, and be the registered authentication certificate
// of that gateway — the one at wantAddr when dialing.
func (g *Gateway) checkPeer(cs tls.ConnectionState, wantAddr string) (*conf.Gateway, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%w: no certificate", errPeerAuth)
	}
	leaf := cs.PeerCertificates[0]
	claimed, ok := pki.GatewayOf(leaf)
	if !ok {
		return nil, fmt.Errorf("%w: certificate names no gateway", errPeerAuth)
	}
	gid, err := ident.ParseGateway(claimed)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate names %q: %w", errPeerAuth, claimed, err)
	}
	// An expired configuration still identifies the peer: the handler
	// then refuses with a clear r1 error rather than a failed handshake.
	st := g.identState(gid.Instance)
	if st == nil {
		return nil, fmt.Errorf("%w: %s is of instance %s, which this gateway holds no configuration of", errPeerAuth, gid, gid.Instance)
	}
	fp := pki.Fingerprint(leaf.Raw)
	gw := st.cfg.GatewayByFingerprint(fp)
	if gw == nil {
		// The peer may have been registered after the held configuration
		// was published.
		g.kickRefresh(gid.Instance)
		return nil, fmt.Errorf("%w: certificate %s… is not registered to any gateway of %s", errPeerAuth, fp[:16], gid.Instance)
	}
	if wantAddr != "" && gw.Address != wantAddr {
		return nil, fmt.Errorf("%w: %s answered at %s, where %s is expected", errPeerAuth, gw.ID, wantAddr, gw.Address)
	}
	if gw.ID != gid {
		return nil, fmt.Errorf("%w: certificate names %s, registered to %s", errPeerAuth, gid, gw.ID)
	}
	usage := x509.ExtKeyUsageClientAuth
	if wantAddr != "" {
		usage = x509.ExtKeyUsageServerAuth
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: st.cfg.Roots(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("%w: %w", errPeerAuth, err)
	}
	if st.cfg.IsRevoked(leaf) {
		return nil, fmt.Errorf("%w: certificate of %s is revoked", errPeerAuth, gw.ID)
	}
	return gw, nil
}

// dialPeer opens a TLS 1.3 connection to a provider gateway and
// authenticates it before any request byte is sent.
func (g *Gateway) dialPeer(ctx context.Context, network, addr string) (net.Conn, error) {
	// Only the configured protocol is offered: the provider's gateway
	// would otherwise choose by its own preference.
	proto := g.cfg.PeerProtocol
	if proto == "" {
		proto = PeerHTTP1 // a configuration that was not given its defaults
	}
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		Config: &tls.Config{
			MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &g.keys.Load().auth, nil
			},
			InsecureSkipVerify: true, // replaced by VerifyConnection: pinned to the registry
			NextProtos:         []string{proto},
			VerifyConnection: func(cs tls.ConnectionState) error {
				_, err := g.checkPeer(cs, addr)
				return err
			},
		},
	}
	return d.DialContext(ctx, network, addr)
}

// isRemoteTLSRefusal reports whether err is the other side refusing our
// certificate during or just after the handshake.
func isRemoteTLSRefusal(err error) bool {
	return err != nil && strings.Contains(err.Error(), "remote error: tls:")
}
