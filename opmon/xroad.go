package opmon

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ident"
)

// The service codes of X-Road's operational monitoring protocol
// (PR-OPMON), the names of their request elements.
const (
	OperationalDataService = "getSecurityServerOperationalData"
	HealthDataService      = "getSecurityServerHealthData"
)

// The attachment of an operational data response: the records as JSON,
// gzip-compressed, in a MIME part with this Content-ID (without the angle
// brackets) and Content-Type. The response body refers to it as
// "cid:" + RecordsContentID.
const (
	RecordsContentID   = "operational-monitoring-data.json.gz"
	RecordsContentType = "application/gzip"
)

// OutputFields are the names of the fields of an operational data record
// in X-Road's JSON payload, the values an outputSpec may list, in the
// order the records carry them. securityServerInternalIp, the mime sizes,
// the attachment counts and xRoadVersion are accepted but never carried:
// a gateway knows none of them.
var OutputFields = []string{
	"monitoringDataTs", "securityServerInternalIp", "securityServerType",
	"requestInTs", "requestOutTs", "responseInTs", "responseOutTs",
	"clientXRoadInstance", "clientMemberClass", "clientMemberCode", "clientSubsystemCode",
	"serviceXRoadInstance", "serviceMemberClass", "serviceMemberCode", "serviceSubsystemCode",
	"serviceCode", "serviceVersion", "restMethod", "restPath",
	"representedPartyClass", "representedPartyCode",
	"messageId", "messageUserId", "messageIssue", "messageProtocolVersion", "xRequestId",
	"clientSecurityServerAddress", "serviceSecurityServerAddress",
	"requestSize", "requestMimeSize", "requestAttachmentCount",
	"responseSize", "responseMimeSize", "responseAttachmentCount",
	"succeeded", "serviceType", "faultCode", "faultString", "statusCode", "xRoadVersion",
}

// OperationalDataRequest is the body of a getSecurityServerOperationalData
// request.
type OperationalDataRequest struct {
	// RecordsFrom and RecordsTo bound the records' time in Unix seconds,
	// both included.
	RecordsFrom, RecordsTo int64
	// Client, when not zero, selects the records of the services this
	// member or subsystem offers (X-Road's search criteria client).
	Client ident.ClientID
	// OutputFields are the fields the records are to carry, in the
	// request's order without repeats; empty for all of them.
	OutputFields []string
}

// ParseOperationalDataRequest reads the getSecurityServerOperationalData
// element (the SOAP body's content) from body: searchCriteria with
// recordsFrom, recordsTo and an optional client, then an optional
// outputSpec of outputField names. The decoding is bounded (64 KiB, the
// schema's four levels, 64 output fields) and refuses document type
// declarations, entities and elements the schema does not define. Errors of the request wrap
// ErrInvalidRequest and name the element at fault.
func ParseOperationalDataRequest(body io.Reader) (OperationalDataRequest, error) {
	var req OperationalDataRequest
	x, err := newBodyDecoder(body)
	if err != nil {
		return req, err
	}
	if err := x.root(OperationalDataService); err != nil {
		return req, err
	}
	seq := newSequence(OperationalDataService, "searchCriteria", "outputSpec")
	for {
		el, ok, err := x.child(OperationalDataService, NamespaceOpMonitoring)
		if err != nil {
			return req, err
		}
		if !ok {
			break
		}
		if err := seq.take(el.Name.Local); err != nil {
			return req, err
		}
		if _, err := checkAttrs(el, false); err != nil {
			return req, err
		}
		if el.Name.Local == "searchCriteria" {
			err = x.searchCriteria(&req)
		} else {
			err = x.outputSpec(&req)
		}
		if err != nil {
			return req, err
		}
	}
	if err := seq.require("searchCriteria"); err != nil {
		return req, err
	}
	if err := x.end(); err != nil {
		return req, err
	}
	return req, nil
}

func (x *bodyDecoder) searchCriteria(req *OperationalDataRequest) error {
	const path = "searchCriteria"
	seq := newSequence(path, "recordsFrom", "recordsTo", "client")
	for {
		el, ok, err := x.child(path, NamespaceOpMonitoring)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := seq.take(el.Name.Local); err != nil {
			return err
		}
		switch el.Name.Local {
		case "recordsFrom":
			req.RecordsFrom, err = x.long(el, path+".recordsFrom")
		case "recordsTo":
			req.RecordsTo, err = x.long(el, path+".recordsTo")
		case "client":
			req.Client, err = x.clientID(el, path+".client")
		}
		if err != nil {
			return err
		}
	}
	if err := seq.require("recordsFrom", "recordsTo"); err != nil {
		return err
	}
	switch {
	case req.RecordsFrom < 0:
		return invalid("searchCriteria.recordsFrom %d is negative", req.RecordsFrom)
	case req.RecordsTo < 0:
		return invalid("searchCriteria.recordsTo %d is negative", req.RecordsTo)
	case req.RecordsTo < req.RecordsFrom:
		return invalid("searchCriteria.recordsTo %d is before recordsFrom %d", req.RecordsTo, req.RecordsFrom)
	}
	return nil
}

func (x *bodyDecoder) outputSpec(req *OperationalDataRequest) error {
	const path = "outputSpec"
	n := 0
	for {
		el, ok, err := x.child(path, NamespaceOpMonitoring)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if el.Name.Local != "outputField" {
			return invalid("%s: unknown element %s", path, el.Name.Local)
		}
		if n++; n > maxOutputFields {
			return invalid("%s: more than %d outputField elements", path, maxOutputFields)
		}
		v, err := x.text(el)
		if err != nil {
			return err
		}
		v = strings.TrimSpace(v)
		if !slices.Contains(OutputFields, v) {
			return invalid("%s: unknown outputField %q", path, v)
		}
		if !slices.Contains(req.OutputFields, v) {
			req.OutputFields = append(req.OutputFields, v)
		}
	}
}

// XRoadOptions are the settings of the answers to PR-OPMON requests. The
// zero value of each field means its default.
type XRoadOptions struct {
	// Now is the time of the request (default: time.Now()).
	Now time.Time
	// AvailableAfter is how long after a second its records may be asked
	// for (default 60 s, X-Road's offset): a record is stored when its
	// exchange ends, a little after the request-in time it is found by,
	// so an interval ending later than Now − AvailableAfter is cut there.
	// It should exceed the gateway's longest exchange.
	AvailableAfter time.Duration
	// MaxRecords bounds the records of one response (default 10,000),
	// plus those of the same second as the last one.
	MaxRecords int
	// Restrict, when not zero, limits the records to those whose client
	// is Restrict or whose service Restrict offers: set it to the
	// requester unless it is the gateway's owner or the instance's
	// monitoring client.
	Restrict ident.ClientID
	// StatisticsPeriod is the period of the health data's statistics,
	// ending at Now (default 10 minutes).
	StatisticsPeriod time.Duration
}

// Defaults of XRoadOptions.
const (
	DefaultAvailableAfter   = 60 * time.Second
	DefaultMaxRecords       = 10000
	DefaultStatisticsPeriod = 10 * time.Minute
)

func (o XRoadOptions) withDefaults() XRoadOptions {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.AvailableAfter <= 0 {
		o.AvailableAfter = DefaultAvailableAfter
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	if o.StatisticsPeriod < time.Second {
		o.StatisticsPeriod = DefaultStatisticsPeriod
	}
	return o
}

// RenderOperationalData answers a getSecurityServerOperationalData
// request: it writes the attachment, the selected records as gzip-
// compressed JSON ({"records": [...]}, X-Road's field names, only the
// requested ones when req names some), to attachment, and returns the
// getSecurityServerOperationalDataResponse element (recordsCount, records
// referring to "cid:"+RecordsContentID, and nextRecordsFrom when the
// interval was cut short).
//
// The records are those whose request came in during the seconds
// req.RecordsFrom to req.RecordsTo, in that order. Records are available
// only before Now − AvailableAfter: a recordsFrom at or after it is
// refused, a recordsTo at or after it is cut to the second before, and
// nextRecordsFrom is that second. At most MaxRecords are returned, plus
// those of the last one's second; when more remain, nextRecordsFrom is
// the second after. Errors of the request wrap ErrInvalidRequest. The
// attachment is written before the element can be made: a caller that
// sends the element first keeps the attachment (MaxRecords records and
// the rest of the last one's second) until then, and drops it on error.
func (s *Store) RenderOperationalData(ctx context.Context, attachment io.Writer, req OperationalDataRequest, opts XRoadOptions) ([]byte, error) {
	opts = opts.withDefaults()
	from, to := req.RecordsFrom, req.RecordsTo
	if from < 0 || to < from {
		return nil, invalid("searchCriteria: recordsFrom %d to recordsTo %d is not an interval", from, to)
	}
	availableBefore := opts.Now.Add(-opts.AvailableAfter).Unix()
	if from >= availableBefore {
		return nil, invalid("searchCriteria.recordsFrom: records from %d are not available yet (until %d)", from, availableBefore)
	}
	next := int64(-1)
	if to >= availableBefore {
		to, next = availableBefore-1, availableBefore
	}
	var want map[string]bool
	if len(req.OutputFields) > 0 {
		want = make(map[string]bool, len(req.OutputFields))
		for _, f := range req.OutputFields {
			if !slices.Contains(OutputFields, f) {
				return nil, invalid("outputSpec: unknown outputField %q", f)
			}
			want[f] = true
		}
	}
	f := Filter{From: time.Unix(from, 0), To: time.Unix(to+1, 0), Limit: MaxLimit}
	if !req.Client.IsZero() {
		if err := req.Client.Validate(); err != nil {
			return nil, invalid("searchCriteria.client: %v", err)
		}
		if !req.Client.IsSubsystem() {
			// Services belong to subsystems: a member offers none.
			return s.writeRecords(ctx, attachment, nil, want, opts.MaxRecords, next)
		}
		f.Provider = req.Client.String()
	}
	if !opts.Restrict.IsZero() {
		f.Party = opts.Restrict.String()
	}
	return s.writeRecords(ctx, attachment, &f, want, opts.MaxRecords, next)
}

// writeRecords writes the attachment of the records f selects (none when
// f is nil) and returns the response element.
func (s *Store) writeRecords(ctx context.Context, attachment io.Writer, f *Filter, want map[string]bool, maxRecords int, next int64) ([]byte, error) {
	gz := gzip.NewWriter(attachment)
	j := jsonRecord{want: want}
	j.b = append(j.b, `{"records":[`...)
	count := 0
	full, last := false, int64(0)
pages:
	for f != nil {
		p, err := s.Query(ctx, *f)
		if err != nil {
			return nil, fmt.Errorf("answer operational data: %w", err)
		}
		for i := range p.Records {
			r := &p.Records[i]
			sec := r.RequestInAt.Unix()
			if full && sec != last {
				next = last + 1
				break pages
			}
			if count > 0 {
				j.b = append(j.b, ',')
			}
			j.record(r)
			if count++; count == maxRecords {
				full, last = true, sec
			}
			if len(j.b) >= 32<<10 {
				if _, err := gz.Write(j.b); err != nil {
					return nil, fmt.Errorf("write operational data: %w", err)
				}
				j.b = j.b[:0]
			}
		}
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	j.b = append(j.b, "]}"...)
	if _, err := gz.Write(j.b); err != nil {
		return nil, fmt.Errorf("write operational data: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("write operational data: %w", err)
	}
	var o xmlOut
	o.root("getSecurityServerOperationalDataResponse")
	o.int("recordsCount", int64(count))
	o.elem("om", "records", "cid:"+RecordsContentID)
	if next >= 0 {
		o.int("nextRecordsFrom", next)
	}
	o.close("getSecurityServerOperationalDataResponse")
	return o.b.Bytes(), nil
}

// jsonRecord appends records as X-Road's JSON objects, with the fields
// in want only (all when nil). A field the record has no value for is
// left out, as X-Road leaves out a null.
type jsonRecord struct {
	b    []byte
	want map[string]bool
	n    int
}

func (j *jsonRecord) key(name string) bool {
	if j.want != nil && !j.want[name] {
		return false
	}
	if j.n > 0 {
		j.b = append(j.b, ',')
	}
	j.n++
	j.b = append(j.b, '"')
	j.b = append(j.b, name...)
	j.b = append(j.b, '"', ':')
	return true
}

func (j *jsonRecord) str(name, v string) {
	if v != "" && j.key(name) {
		j.b = appendJSONString(j.b, v)
	}
}

func (j *jsonRecord) int(name string, v int64) {
	if j.key(name) {
		j.b = strconv.AppendInt(j.b, v, 10)
	}
}

// millis writes t in Unix milliseconds, nothing when not reached.
func (j *jsonRecord) millis(name string, t time.Time) {
	if !t.IsZero() {
		j.int(name, t.UnixMilli())
	}
}

// record appends r's object.
func (j *jsonRecord) record(r *Record) {
	j.n = 0
	j.b = append(j.b, '{')
	j.int("monitoringDataTs", r.RequestInAt.Unix())
	clientGateway, serviceGateway := r.Gateway, r.PeerGateway
	switch r.Side {
	case "consumer":
		j.str("securityServerType", "Client")
	case "provider":
		j.str("securityServerType", "Producer")
		clientGateway, serviceGateway = serviceGateway, clientGateway
	}
	j.millis("requestInTs", r.RequestInAt)
	j.millis("requestOutTs", r.RequestOutAt)
	j.millis("responseInTs", r.ResponseInAt)
	j.millis("responseOutTs", r.ResponseOutAt)
	if c, err := ident.ParseClient(r.Client); err == nil {
		j.str("clientXRoadInstance", c.Instance)
		j.str("clientMemberClass", c.Class)
		j.str("clientMemberCode", c.Code)
		j.str("clientSubsystemCode", c.Subsystem)
	}
	if svc, err := ident.ParseService(r.Service); err == nil {
		j.str("serviceXRoadInstance", svc.Provider.Instance)
		j.str("serviceMemberClass", svc.Provider.Class)
		j.str("serviceMemberCode", svc.Provider.Code)
		j.str("serviceSubsystemCode", svc.Provider.Subsystem)
		j.str("serviceCode", svc.Code)
		j.str("serviceVersion", svc.Version)
	}
	if r.Protocol == "r1" {
		j.str("restMethod", r.Method)
		j.str("restPath", r.Path)
	}
	// X-Road-Represented-Party is [CLASS/]CODE.
	if class, code, ok := strings.Cut(r.RepresentedParty, "/"); ok && !strings.Contains(code, "/") {
		j.str("representedPartyClass", class)
		j.str("representedPartyCode", code)
	} else {
		j.str("representedPartyCode", r.RepresentedParty)
	}
	j.str("messageId", r.XRoadID)
	j.str("messageUserId", r.UserID)
	j.str("messageIssue", r.Issue)
	j.str("messageProtocolVersion", r.Protocol)
	j.str("xRequestId", r.RequestID)
	// The client's gateway and the provider's, by identifier: a gateway's
	// address is in the shared configuration.
	j.str("clientSecurityServerAddress", clientGateway)
	j.str("serviceSecurityServerAddress", serviceGateway)
	j.int("requestSize", r.RequestBytes)
	j.int("responseSize", r.ResponseBytes)
	if j.key("succeeded") {
		j.b = strconv.AppendBool(j.b, r.Succeeded)
	}
	j.str("serviceType", serviceType(r.Protocol))
	j.str("faultCode", r.ErrorType)
	j.str("faultString", r.ErrorMessage)
	if r.Status != 0 {
		j.int("statusCode", int64(r.Status))
	}
	j.b = append(j.b, '}')
}

// serviceType is X-Road's service type of a protocol: REST for r1, WSDL
// for SOAP (X-Road message protocol 4.0).
func serviceType(protocol string) string {
	switch protocol {
	case "r1":
		return "REST"
	case "4.0":
		return "WSDL"
	}
	return ""
}

// appendJSONString appends s as a JSON string; bytes that are not UTF-8
// become U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
