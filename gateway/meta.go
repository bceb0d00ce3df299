package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
)

// The JSON shapes of the REST metaservices, as X-Road clients expect them.

type metaID struct {
	ObjectType    string `json:"object_type"`
	Instance      string `json:"xroad_instance"`
	MemberClass   string `json:"member_class"`
	MemberCode    string `json:"member_code"`
	SubsystemCode string `json:"subsystem_code,omitempty"`
	ServiceCode   string `json:"service_code,omitempty"`
	ServiceType   string `json:"service_type,omitempty"`
}

type metaClient struct {
	ID   metaID `json:"id"`
	Name string `json:"name"`
}

type metaEndpoint struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

type metaService struct {
	metaID
	Endpoints []metaEndpoint `json:"endpoint_list,omitempty"`
}

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// listClients answers, at the consumer's gateway, with the members and
// subsystems of the instance, in JSON unless the client asks for XML
// (PR-MREST §2).
func (g *Gateway) listClients(w http.ResponseWriter, st *confState, req *r1.Request, requestID string, f r1.Format) {
	w.Header().Set(r1.HeaderClient, req.Client.Escaped())
	w.Header().Set(r1.HeaderID, req.ID)
	w.Header().Set(r1.HeaderRequestID, requestID)
	writeClientList(w, clientList(st), f)
}

// clientList lists the members and subsystems of an instance's
// configuration, each subsystem after its member.
func clientList(st *confState) []metaClient {
	out := []metaClient{}
	for _, m := range st.cfg.Members {
		out = append(out, metaClient{ID: metaID{ObjectType: "MEMBER", Instance: m.ID.Instance, MemberClass: m.ID.Class, MemberCode: m.ID.Code}, Name: m.Name})
		subs := slices.Clone(m.Subsystems)
		slices.Sort(subs)
		for _, s := range subs {
			out = append(out, metaClient{ID: metaID{ObjectType: "SUBSYSTEM", Instance: m.ID.Instance, MemberClass: m.ID.Class, MemberCode: m.ID.Code, SubsystemCode: s}, Name: m.Name})
		}
	}
	return out
}

// serveMeta answers listMethods, allowedMethods and getOpenAPI at the
// provider's gateway, as a response to be signed like any other.
// A service's description goes only where describe lets it: listMethods
// and allowedMethods leave out the others, getOpenAPI refuses them.
func (g *Gateway) serveMeta(r *http.Request, live *liveConfig, groups []ident.GroupID, svc ident.ServiceID, client ident.ClientID, describe describeFunc) (*http.Response, *r1.Error) {
	if r.Method != http.MethodGet {
		return nil, r1.New(r1.TypeServerInvalidReq, "metaservice %s only answers GET", svc.Code)
	}
	var services []*Service
	for i := range live.cfg.Services {
		// The REST metaservices describe REST services; SOAP services
		// are described by their SOAP counterparts (soapmeta.go).
		if s := &live.cfg.Services[i]; s.ID.Provider == svc.Provider && s.Protocol != ProtocolSOAP {
			services = append(services, s)
		}
	}
	if svc.Code != r1.MetaGetOpenAPI {
		kept := services[:0]
		for _, s := range services {
			if describe(s.ID) == nil {
				kept = append(kept, s)
			}
		}
		services = kept
	}
	switch svc.Code {
	case r1.MetaListMethods, r1.MetaAllowedMethods:
		out := struct {
			Service []metaService `json:"service"`
		}{Service: []metaService{}}
		for _, s := range services {
			// A service described by an OpenAPI document is of type
			// OPENAPI, as in X-Road; one without, REST.
			typ := "REST"
			if s.OpenAPIFile != "" {
				typ = "OPENAPI"
			}
			ms := metaService{metaID: metaID{ObjectType: "SERVICE", Instance: s.ID.Provider.Instance, MemberClass: s.ID.Provider.Class,
				MemberCode: s.ID.Provider.Code, SubsystemCode: s.ID.Provider.Subsystem, ServiceCode: s.ID.Code, ServiceType: typ}}
			if svc.Code == r1.MetaAllowedMethods {
				any := false
				for _, ep := range s.endpoints {
					if g.allowedEndpoint(groups, s, client, ep) {
						ms.Endpoints = append(ms.Endpoints, metaEndpoint{Method: ep.method, Path: "/" + strings.Join(ep.segs, "/")})
						any = true
					}
				}
				if !any && !g.allowedEndpoint(groups, s, client, endpoint{method: "*", segs: []string{"**"}}) {
					continue
				}
			} else {
				for _, ep := range s.endpoints {
					ms.Endpoints = append(ms.Endpoints, metaEndpoint{Method: ep.method, Path: "/" + strings.Join(ep.segs, "/")})
				}
			}
			out.Service = append(out.Service, ms)
		}
		return jsonResponse(out), nil
	default: // getOpenAPI
		code := r.URL.Query().Get("serviceCode")
		if code == "" {
			return nil, r1.New(r1.TypeServerInvalidReq, "getOpenAPI needs the query parameter serviceCode")
		}
		var s *Service
		for _, c := range services {
			if c.ID.Code == code {
				s = c
			}
		}
		if s == nil {
			return nil, r1.New(r1.TypeServerUnknownSvc, "service %s/%s is not offered at this gateway", svc.Provider, code)
		}
		if !g.allowedEndpoint(groups, s, client, endpoint{method: "*", segs: []string{"**"}}) && !g.anyEndpointAllowed(groups, s, client) {
			return nil, r1.New(r1.TypeServerAccessDenied, "client %s has no access right to %s", client, s.ID)
		}
		if e := describe(s.ID); e != nil {
			return nil, e
		}
		if s.OpenAPIFile == "" {
			return nil, r1.New(r1.TypeServerUnknownSvc, "service %s has no OpenAPI description", s.ID)
		}
		b, err := os.ReadFile(s.OpenAPIFile)
		if err != nil {
			return nil, r1.Wrap(err, r1.TypeServerInternal, "OpenAPI description of %s cannot be read", s.ID)
		}
		// The media types PR-MREST's description of getOpenAPI names.
		ct := "text/yaml; charset=utf-8"
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
			ct = "application/json; charset=utf-8"
		}
		return bytesResponse(http.StatusOK, ct, b), nil
	}
}

// describeFunc says whether a service's description may go to the
// client of a metaservice request: nil, or the refusal.
type describeFunc func(ident.ServiceID) *r1.Error

// describable decides, under this gateway's rules, whether the client may
// read a service's description: where the service's data may go (with the
// purpose and legal basis the request declares), or anywhere when its
// class makes its description public.
func (g *Gateway) describable(st *confState, client ident.ClientID, h http.Header) describeFunc {
	purpose, basis, bad := declared(h, r1.TypeServerInvalidReq)
	return func(id ident.ServiceID) *r1.Error {
		if c, ok := st.cfg.PolicyEngine().Class(id); ok && c.PublicDescription {
			return nil
		}
		if bad != nil {
			return bad
		}
		dec, _ := g.decide(policy.SideProvider, st, st, client, id, purpose, basis)
		if !dec.Allow {
			return r1.New(r1.TypeServerPolicyDenied, "the description of %s goes only where its data may go: %s", id, dec.Message)
		}
		return nil
	}
}

// allowedEndpoint reports whether the client may call every request the
// endpoint pattern covers, by an access right to the whole service or to
// that very pattern.
func (g *Gateway) allowedEndpoint(groups []ident.GroupID, s *Service, client ident.ClientID, ep endpoint) bool {
	for _, a := range s.access {
		if a.isGroup && !slices.Contains(groups, a.group) || !a.isGroup && a.subsystem != client {
			continue
		}
		if a.endpoint == nil || a.endpoint.raw == ep.raw || (ep.raw == "" && a.endpoint.method == ep.method && slices.Equal(a.endpoint.segs, ep.segs)) {
			return true
		}
	}
	return false
}

func (g *Gateway) anyEndpointAllowed(groups []ident.GroupID, s *Service, client ident.ClientID) bool {
	for _, a := range s.access {
		if a.isGroup && slices.Contains(groups, a.group) || !a.isGroup && a.subsystem == client {
			return true
		}
	}
	return false
}

func jsonResponse(v any) *http.Response {
	var b bytes.Buffer
	jsonEncoder(&b).Encode(v)
	return bytesResponse(http.StatusOK, "application/json; charset=utf-8", b.Bytes())
}

func bytesResponse(status int, contentType string, b []byte) *http.Response {
	return &http.Response{
		StatusCode:    status,
		Header:        http.Header{"Content-Type": {contentType}, "Content-Length": {strconv.Itoa(len(b))}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)),
	}
}
