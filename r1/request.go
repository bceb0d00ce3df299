package r1

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ident"
)

// The X-Road headers of r1.
const (
	HeaderClient      = "X-Road-Client"
	HeaderService     = "X-Road-Service"
	HeaderID          = "X-Road-Id"
	HeaderUserID      = "X-Road-UserId"
	HeaderIssue       = "X-Road-Issue"
	HeaderRequestHash = "X-Road-Request-Hash"
	HeaderRequestID   = "X-Road-Request-Id"
	HeaderError       = "X-Road-Error"
	// HeaderPurpose and HeaderLegalBasis are Sampan extensions: the purpose
	// and legal basis the caller declares for the exchange.
	HeaderPurpose    = "X-Road-Purpose"
	HeaderLegalBasis = "X-Road-Legal-Basis"
	// HeaderAINotice and HeaderAIModelCard are on the answers of a
	// registered AI service: its transparency notice where the rules of
	// either country require one, and the SHA-256 of its registered model
	// card (docs/ai-governance.md).
	HeaderAINotice    = "Ai-Notice"
	HeaderAIModelCard = "Ai-Model-Card"
	// HeaderRepresentedParty names the party the client acts for
	// (X-Road's represented-party extension), passed to the service.
	HeaderRepresentedParty = "X-Road-Represented-Party"
	// HeaderSecurityServer names the provider's gateway the client wants
	// the request to go to: instance/class/code/name, each part
	// percent-encoded.
	HeaderSecurityServer = "X-Road-Security-Server"
)

// Prefix is the path prefix of the protocol.
const Prefix = "/r1/"

// Metaservice codes.
const (
	MetaListClients    = "listClients"
	MetaListMethods    = "listMethods"
	MetaAllowedMethods = "allowedMethods"
	MetaGetOpenAPI     = "getOpenAPI"
	// MetaListCentralServices is PR-META's list of central services,
	// answered at the client side's root only.
	MetaListCentralServices = "listCentralServices"
)

// MaxHeaderValue bounds a single X-Road header value in bytes.
const MaxHeaderValue = 1024

// Request is a parsed r1 request.
type Request struct {
	// Service is the called service; zero for listClients.
	Service ident.ServiceID
	// Meta is the metaservice code when the request calls one.
	Meta string
	// MetaInstance is the instance listClients was asked about.
	MetaInstance string
	// Path is the part of the URL path after the service identifier, still
	// percent-encoded, starting with "/" or empty.
	Path     string
	RawQuery string
	Client   ident.ClientID
	ID       string
	UserID   string
	Issue    string
	// SecurityServer is the provider's gateway the client named in
	// X-Road-Security-Server; zero when it named none.
	SecurityServer ident.GatewayID
}

// NewID returns a fresh exchange identifier: a time-ordered UUID
// (version 7, RFC 9562: the Unix time in milliseconds, then 74 random
// bits), so that the message logs' X-Road-Id indexes grow at one end
// rather than at random places.
func NewID() string { return newID(time.Now()) }

func newID(now time.Time) string {
	var b [16]byte
	rand.Read(b[6:])
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func headerValue(h http.Header, name string) (string, *Error) {
	vs := h.Values(name)
	if len(vs) > 1 {
		return "", New(TypeInvalidHeader, "header %s appears more than once", name)
	}
	if len(vs) == 0 {
		return "", nil
	}
	v := strings.TrimSpace(vs[0])
	if len(v) > MaxHeaderValue {
		return "", New(TypeInvalidHeader, "header %s is longer than %d bytes", name, MaxHeaderValue)
	}
	if !utf8.ValidString(v) {
		return "", New(TypeInvalidHeader, "header %s is not valid UTF-8", name)
	}
	return v, nil
}

// ParseRequest reads an r1 request: the service or metaservice from the
// escaped path, and the X-Road headers. X-Road-Id is generated when the
// caller sent none.
func ParseRequest(r *http.Request) (*Request, *Error) {
	return parseRequest(r, true)
}

// ParseMapped parses a request another front end mapped onto r1's form
// (the SOAP front end): its metaservice requests are POSTs whose body
// that front end reads, so r1's rules for metaservice requests (GET, a
// serviceCode query) do not apply.
func ParseMapped(r *http.Request) (*Request, *Error) {
	return parseRequest(r, false)
}

func parseRequest(r *http.Request, restRules bool) (*Request, *Error) {
	raw := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(raw, Prefix)
	if !ok {
		return nil, New(TypeInvalidRequest, "path must start with %s", Prefix)
	}
	req := &Request{RawQuery: r.URL.RawQuery}
	parts := strings.SplitN(rest, "/", 6)
	for i := range parts {
		if i == 5 {
			break
		}
		if parts[i] == "" {
			parts = parts[:i]
			break
		}
	}
	switch {
	case len(parts) == 2 && parts[1] == MetaListClients:
		inst, err := unescape(parts[0])
		if err != nil || ident.ValidateInstance(inst) != nil {
			return nil, New(TypeInvalidServiceID, "invalid instance in listClients path")
		}
		req.Meta, req.MetaInstance = MetaListClients, inst
	case len(parts) >= 5:
		var dec [5]string
		for i := range 5 {
			v, err := unescape(parts[i])
			if err != nil {
				return nil, New(TypeInvalidServiceID, "bad percent-encoding in service identifier")
			}
			dec[i] = v
		}
		req.Service = ident.ServiceID{Provider: ident.ClientID{Instance: dec[0], Class: dec[1], Code: dec[2], Subsystem: dec[3]}, Code: dec[4]}
		if err := req.Service.Validate(); err != nil {
			return nil, Wrap(err, TypeInvalidServiceID, "invalid service identifier: %s", trimIdentErr(err))
		}
		switch dec[4] {
		case MetaListMethods, MetaAllowedMethods, MetaGetOpenAPI:
			req.Meta = dec[4]
		}
		if len(parts) == 6 {
			req.Path = "/" + parts[5]
			if e := CheckPath(req.Path); e != nil {
				return nil, e
			}
		}
	default:
		return nil, New(TypeInvalidServiceID,
			"path must be /r1/{instance}/{memberClass}/{memberCode}/{subsystemCode}/{serviceCode}[/path]")
	}
	if restRules {
		if e := checkMeta(r, req); e != nil {
			return nil, e
		}
	}

	client, e := headerValue(r.Header, HeaderClient)
	if e != nil {
		return nil, e
	}
	if client == "" {
		return nil, New(TypeInvalidClientID, "missing header %s", HeaderClient)
	}
	c, err := ident.ParseEscapedClient(client)
	if err != nil {
		return nil, Wrap(err, TypeInvalidClientID, "malformed %s: %s", HeaderClient, trimIdentErr(err))
	}
	if !c.IsSubsystem() {
		return nil, New(TypeInvalidClientID, "%s must name a subsystem (instance/class/code/subsystem)", HeaderClient)
	}
	req.Client = c
	if req.ID, e = headerValue(r.Header, HeaderID); e != nil {
		return nil, e
	}
	if req.ID == "" {
		req.ID = NewID()
	}
	if req.UserID, e = headerValue(r.Header, HeaderUserID); e != nil {
		return nil, e
	}
	if req.Issue, e = headerValue(r.Header, HeaderIssue); e != nil {
		return nil, e
	}
	if req.SecurityServer, e = securityServer(r.Header); e != nil {
		return nil, e
	}
	if e := checkRepresentedParty(r.Header); e != nil {
		return nil, e
	}
	return req, nil
}

// checkMeta refuses a metaservice request the metaservice cannot answer:
// every one answers GET only, and getOpenAPI needs the service code.
func checkMeta(r *http.Request, req *Request) *Error {
	if req.Meta == "" {
		return nil
	}
	if r.Method != http.MethodGet {
		return New(TypeInvalidRequest, "metaservice %s answers GET only, not %s", req.Meta, r.Method)
	}
	if req.Meta == MetaGetOpenAPI && r.URL.Query().Get("serviceCode") == "" {
		return New(TypeInvalidRequest, "getOpenAPI needs the query parameter serviceCode")
	}
	return nil
}

// securityServer reads X-Road-Security-Server.
func securityServer(h http.Header) (ident.GatewayID, *Error) {
	v, e := headerValue(h, HeaderSecurityServer)
	if e != nil || v == "" {
		return ident.GatewayID{}, e
	}
	return ParseSecurityServer(v)
}

// ParseSecurityServer parses the value of X-Road-Security-Server:
// instance/memberClass/memberCode/serverCode, each part percent-encoded.
func ParseSecurityServer(v string) (ident.GatewayID, *Error) {
	bad := func(err error) *Error {
		return Wrap(err, TypeInvalidHeader, "%s must name a gateway as instance/memberClass/memberCode/serverCode", HeaderSecurityServer)
	}
	parts := strings.Split(v, "/")
	if len(parts) != 4 {
		return ident.GatewayID{}, bad(nil)
	}
	for i, p := range parts {
		u, err := unescape(p)
		if err != nil {
			return ident.GatewayID{}, bad(err)
		}
		parts[i] = u
	}
	g := ident.GatewayID{Instance: parts[0], Class: parts[1], Code: parts[2], Name: parts[3]}
	if err := g.Validate(); err != nil {
		return ident.GatewayID{}, bad(err)
	}
	return g, nil
}

// checkRepresentedParty checks the form of X-Road-Represented-Party:
// [partyClass/]partyCode, neither part empty.
func checkRepresentedParty(h http.Header) *Error {
	v, e := headerValue(h, HeaderRepresentedParty)
	if e != nil || v == "" {
		return e
	}
	parts := strings.Split(v, "/")
	if len(parts) > 2 || slices.Contains(parts, "") {
		return New(TypeInvalidHeader, "%s must be [partyClass/]partyCode", HeaderRepresentedParty)
	}
	return nil
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	return url.PathUnescape(s)
}

func trimIdentErr(err error) string {
	return strings.TrimPrefix(err.Error(), ident.ErrInvalid.Error()+": ")
}

// hopHeaders are never passed on: they belong to one connection.
// So are the headers that could reveal the name or address of the host
// that sent them (PR-REST §4.3): Host, User-Agent and Server.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "User-Agent", "Server",
}

// Forwardable reports whether a header may be passed between the client,
// the gateways and the service. Hop-by-hop headers, headers named in
// Connection, the headers that name the sending host (User-Agent,
// Server), and the gateways' own Sampan-* headers are not.
func Forwardable(name string, connection []string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for _, h := range hopHeaders {
		if name == h {
			return false
		}
	}
	if strings.HasPrefix(name, "Sampan-") {
		return false
	}
	for _, v := range connection {
		for f := range strings.SplitSeq(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f)) == name {
				return false
			}
		}
	}
	return true
}

// CheckPath refuses a service path that could step outside the service
// at the backend: dot segments ("." or "..", also percent-encoded) and
// encoded slashes or backslashes, which servers may decode into
// separators after access rights were decided on the path as sent.
func CheckPath(escaped string) *Error {
	for seg := range strings.SplitSeq(escaped, "/") {
		low := strings.ToLower(seg)
		if strings.Contains(low, "%2f") || strings.Contains(low, "%5c") || strings.Contains(seg, "\\") {
			return New(TypeInvalidRequest, "service path may not contain encoded slashes or backslashes")
		}
		if d := strings.ReplaceAll(low, "%2e", "."); d == "." || d == ".." {
			return New(TypeInvalidRequest, "service path may not contain dot segments")
		}
	}
	return nil
}
