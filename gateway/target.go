package gateway

import (
	"net/http"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// targeted narrows the gateways serving a service's provider to the one
// the client named in X-Road-Security-Server (PR-REST §4.3), when it
// named one. A gateway that is not registered in the provider's instance,
// or does not serve the provider, is refused: the request goes nowhere
// else.
func targeted(pst *confState, hosts []*conf.Gateway, target ident.GatewayID, svc ident.ServiceID) ([]*conf.Gateway, *r1.Error) {
	if target == (ident.GatewayID{}) {
		return hosts, nil
	}
	for _, h := range hosts {
		if h.ID == target {
			return []*conf.Gateway{h}, nil
		}
	}
	if pst.cfg.Gateway(target) == nil {
		return nil, r1.New(r1.TypeInvalidSecurityServer, "gateway %s named in %s is not registered in %s", target, r1.HeaderSecurityServer, pst.cfg.Instance)
	}
	return nil, r1.New(r1.TypeInvalidSecurityServer, "gateway %s named in %s does not serve %s, the provider of %s", target, r1.HeaderSecurityServer, svc.Provider, svc)
}

// checkTarget refuses, at the provider's gateway, a request whose client
// named another gateway in X-Road-Security-Server: the consumer's
// gateway sent it to the wrong one. The header travels signed.
func (g *Gateway) checkTarget(h http.Header) *r1.Error {
	vs := h.Values(r1.HeaderSecurityServer)
	if len(vs) == 0 {
		return nil
	}
	if len(vs) == 1 {
		if id, e := r1.ParseSecurityServer(vs[0]); e == nil && id == g.cfg.ID {
			return nil
		}
	}
	return r1.New(r1.TypeServerInvalidSecurityServer, "the request names another gateway than %s in %s", g.cfg.ID, r1.HeaderSecurityServer)
}

// errorFormat is the format of the errors a client gets: JSON unless its
// Accept header prefers XML (PR-REST §4.6).
func errorFormat(r *http.Request) r1.Format {
	return r1.Negotiate(r.Header.Get("Accept"), r1.FormatJSON)
}
