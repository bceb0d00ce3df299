package gateway

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// serveSOAPMeta answers the SOAP metaservices (PR-META) at the provider's
// gateway: listMethods (the provider's services whose description may go
// to the client), allowedMethods (those the client may call) and getWsdl
// (a SOAP service's WSDL, as the answer's attachment). The request is
// read whole, so that its signature is checked before anything is
// answered; the answer echoes its header.
func (g *Gateway) serveSOAPMeta(r *http.Request, body io.Reader, live *liveConfig, groups []ident.GroupID, svc ident.ServiceID, client ident.ClientID, describe describeFunc) (*http.Response, *r1.Error) {
	req, err := io.ReadAll(io.LimitReader(body, maxSOAPPart+1))
	if err != nil {
		return nil, bodyError(err, true, client)
	}
	if len(req) > maxSOAPPart {
		return nil, r1.New(r1.TypeServerTooLarge, "metaservice request larger than %d bytes", maxSOAPPart)
	}
	lim := soapLimits(maxSOAPPart)
	env, err := soap.ParseRequest(req, lim)
	if err != nil {
		return nil, r1.New(r1.TypeServerInvalidReq, "malformed metaservice request: %s", asR1(err, soap.TypeInvalidSoap, "malformed").Message)
	}
	mb, err := soap.ParseMetaBody(req, env, lim)
	if err != nil || mb.Op != svc.Code {
		return nil, r1.New(r1.TypeServerInvalidReq, "the body of a %s request must be xrd:%s", svc.Code, svc.Code)
	}
	var services []*Service
	for i := range live.cfg.Services {
		// The SOAP metaservices describe SOAP services, as X-Road's do.
		if s := &live.cfg.Services[i]; s.ID.Provider == svc.Provider && s.Protocol == ProtocolSOAP {
			services = append(services, s)
		}
	}
	switch svc.Code {
	case soap.OpListMethods, soap.OpAllowedMethods:
		var ids []ident.ServiceID
		for _, s := range services {
			if describe(s.ID) != nil {
				continue
			}
			if svc.Code == soap.OpAllowedMethods && !g.anyEndpointAllowed(groups, s, client) {
				continue
			}
			ids = append(ids, s.ID)
		}
		slices.SortFunc(ids, func(a, b ident.ServiceID) int { return strings.Compare(a.Code, b.Code) })
		out, err := soap.Response(req, env, soap.MethodsResponseBody(svc.Code, ids))
		if err != nil {
			return nil, r1.Wrap(err, r1.TypeServerInternal, "cannot build the %s answer", svc.Code)
		}
		return bytesResponse(http.StatusOK, soap.ContentTypeSOAP, out), nil
	default: // getWsdl
		var s *Service
		for _, c := range services {
			if c.ID.Code == mb.ServiceCode {
				s = c
			}
		}
		if s == nil {
			return nil, r1.New(r1.TypeServerUnknownSvc, "service %s/%s is not offered at this gateway", svc.Provider, mb.ServiceCode)
		}
		if !g.anyEndpointAllowed(groups, s, client) {
			return nil, r1.New(r1.TypeServerAccessDenied, "client %s has no access right to %s", client, s.ID)
		}
		if e := describe(s.ID); e != nil {
			return nil, e
		}
		if s.WSDLFile == "" {
			return nil, r1.New(r1.TypeServerUnknownSvc, "service %s has no WSDL (it is a %s service)", s.ID, s.Protocol)
		}
		wsdl, err := os.ReadFile(s.WSDLFile)
		if err != nil {
			return nil, r1.Wrap(err, r1.TypeServerInternal, "the WSDL of %s cannot be read", s.ID)
		}
		part, err := soap.Response(req, env, soap.GetWsdlResponseBody(mb.ServiceCode, mb.ServiceVersion))
		if err != nil {
			return nil, r1.Wrap(err, r1.TypeServerInternal, "cannot build the getWsdl answer")
		}
		var b bytes.Buffer
		mw := soap.NewMultipartWriter(&b)
		if err := soap.WriteGetWsdlResponse(mw, part, bytes.NewReader(wsdl)); err != nil {
			return nil, r1.Wrap(err, r1.TypeServerInternal, "cannot build the getWsdl answer")
		}
		return bytesResponse(http.StatusOK, mw.ContentType(), b.Bytes()), nil
	}
}
