package gateway

import (
	"slices"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// allowed decides access with the service's access rights compiled to
// Cedar: deny unless a right names the client or one of its global
// groups, for the whole service or for an endpoint pattern that matches
// method and path (the patterns are matched here, the grant decided by
// the policy).
func (g *Gateway) allowed(st, cst *confState, s *Service, client ident.ClientID, method, path string) bool {
	p := displayPath(path)
	var matched []string
	for _, a := range s.access {
		if a.endpoint != nil && a.endpoint.match(method, p) && !slices.Contains(matched, a.endpoint.raw) {
			matched = append(matched, a.endpoint.raw)
		}
	}
	return s.policy.Allowed(client, clientGroups(st, cst, client), matched)
}

func displayPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// providesFor reports whether this gateway offers services of subsystem p.
func (l *liveConfig) providesFor(p ident.ClientID) bool {
	for id := range l.services {
		if id.Provider == p {
			return true
		}
	}
	return false
}

func isProviderMeta(code string) bool {
	switch code {
	case r1.MetaListMethods, r1.MetaAllowedMethods, r1.MetaGetOpenAPI, soap.OpGetWsdl:
		return true
	}
	return false
}

// clientGroups returns the global groups a client belongs to: those of
// this instance, and for a foreign client also those of its own.
func clientGroups(st, cst *confState, client ident.ClientID) []ident.GroupID {
	groups := st.cfg.GroupsOf(client)
	if cst != nil && cst != st {
		groups = append(slices.Clip(groups), cst.cfg.GroupsOf(client)...)
	}
	return groups
}
