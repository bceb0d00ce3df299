package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/sandbox"
)

// soapClientDir holds the npm soap package's driver (client.js), its
// pinned dependencies and the metaservices' WSDL.
const soapClientDir = "soapclient"

// nodeSOAPClient returns the node binary that runs the driver, or skips
// the test naming what is missing; with SAMPAN_REQUIRE_SOAP_CLIENT=1 (as
// in CI, which installs it) a missing client fails the test instead.
func nodeSOAPClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(soapClientDir, "node_modules", "soap", "package.json"))
	}
	if err != nil {
		if os.Getenv("SAMPAN_REQUIRE_SOAP_CLIENT") == "1" {
			t.Fatalf("SAMPAN_REQUIRE_SOAP_CLIENT=1 but the npm soap client is not installed: %v", err)
		}
		t.Skipf("skipped: the npm soap client is not installed (install Node.js and npm, then run `npm ci` in interop/%s): %v", soapClientDir, err)
	}
	return node
}

// party is an X-Road identifier as the driver's plan gives it.
type party struct {
	Instance       string `json:"instance"`
	MemberClass    string `json:"memberClass"`
	MemberCode     string `json:"memberCode"`
	Subsystem      string `json:"subsystem"`
	ServiceCode    string `json:"serviceCode,omitempty"`
	ServiceVersion string `json:"serviceVersion,omitempty"`
}

// planTLS is how the driver connects to a gateway over HTTPS with the
// information system's certificate.
type planTLS struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

type planAttachment struct {
	File        string `json:"file"`
	ContentID   string `json:"contentId"`
	ContentType string `json:"contentType"`
}

// planCall is one call the driver makes: getWsdl of the service through
// the caller's gateway, then the operation from the WSDL it received.
type planCall struct {
	Label      string            `json:"label"`
	URL        string            `json:"url"`
	TLS        *planTLS          `json:"tls,omitempty"`
	UserID     string            `json:"userId"`
	ID         string            `json:"id"`
	Client     party             `json:"client"`
	Service    party             `json:"service"`
	WSDLOut    string            `json:"wsdlOut"`
	Operation  string            `json:"operation"`
	Args       map[string]string `json:"args"`
	Attachment *planAttachment   `json:"attachment,omitempty"`

	// For the test, not the driver: the gateways that log the call.
	consumerDir, providerDir string
	client, service          string
}

// callResult is what the driver reports of one call.
type callResult struct {
	Label   string `json:"label"`
	GetWsdl struct {
		ID             string `json:"id"`
		ServiceCode    string `json:"serviceCode"`
		ServiceVersion string `json:"serviceVersion"`
		RequestHash    string `json:"requestHash"`
		ContentType    string `json:"contentType"`
	} `json:"getWsdl"`
	ListMethods    methodsResult `json:"listMethods"`
	AllowedMethods methodsResult `json:"allowedMethods"`
	Call           struct {
		ID          string          `json:"id"`
		RequestHash string          `json:"requestHash"`
		Result      json.RawMessage `json:"result"`
		Request     string          `json:"request"`
		// RequestHeaders are the HTTP headers the client sent.
		RequestHeaders map[string]string `json:"requestHeaders"`
	} `json:"call"`
}

// methodsResult is a listMethods or allowedMethods answer as the driver
// reports it: the service codes listed, and the SOAP part it sent.
type methodsResult struct {
	ID          string   `json:"id"`
	RequestHash string   `json:"requestHash"`
	Services    []string `json:"services"`
	Request     string   `json:"request"`
}

// receipt is sendDocument's answer as the soap package decodes it.
type receipt struct {
	Title           string `json:"title"`
	SenderReference string `json:"senderReference"`
	DocumentCount   int    `json:"documentCount"`
	Received        []struct {
		ContentID   string `json:"contentId"`
		ContentType string `json:"contentType"`
		Bytes       int64  `json:"bytes"`
		SHA256      string `json:"sha256"`
	} `json:"received"`
}

// The npm soap package, a SOAP client written for no particular server,
// asks Sampan gateways for the sandbox services' WSDLs with the getWsdl
// metaservice, builds its clients from the WSDLs it received and calls
// getCompany and sendDocument through two gateways each: domestic over
// HTTP and across the border over HTTPS with the information system's
// certificate, sendDocument with an MTOM attachment and without. Each
// answer is the service's (company, receipt whose digest is the
// attachment's SHA-256), carries xrd:requestHash over the exact SOAP part
// the client sent, and both gateways' message logs hold a record of each
// exchange whose evidence bundle verifies. The client's listMethods and
// allowedMethods answers name the service and carry requestHash too.
func TestNodeSOAPClient(t *testing.T) {
	node := nodeSOAPClient(t)
	metaWSDL, err := filepath.Abs(filepath.Join(soapClientDir, "xroad-meta.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	driver, err := filepath.Abs(filepath.Join(soapClientDir, "client.js"))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), TimestampInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	m := sb.Manifest

	// Where each client subsystem connects, and the provider's gateway.
	type conn struct {
		url, dataDir string
		tls          *planTLS
	}
	conns := map[string]conn{}
	gatewayDir := map[string]string{}
	for _, g := range m.Gateways {
		gatewayDir[g.ID] = g.DataDir
		for _, c := range g.ClientConnections {
			cn := conn{url: g.ClientURL + "/", dataDir: g.DataDir}
			if c.CertFile != "" {
				cn.url = g.ClientTLSURL + "/"
				cn.tls = &planTLS{CA: g.ClientTLSCAFile, Cert: c.CertFile, Key: c.KeyFile}
			}
			conns[c.Subsystem] = cn
		}
	}
	providerDir := map[string]string{}
	version := map[string]string{}
	for _, s := range m.Services {
		if s.Protocol == "soap" {
			providerDir[s.ID], version[s.ID] = gatewayDir[s.ProviderGateway], s.ServiceVersion
		}
	}

	// The document: binary, with CR LF and a line that looks like a MIME
	// boundary, so that nothing on the way may treat it as text.
	work := t.TempDir()
	doc := make([]byte, 200<<10)
	rng := rand.New(rand.NewPCG(23, 4))
	for i := range doc {
		doc[i] = byte(rng.UintN(256))
	}
	copy(doc[1000:], "\r\n--uuid:boundary-lookalike\r\nContent-Type: text/xml\r\n\r\n<Envelope/>")
	docFile := filepath.Join(work, "decision.pdf")
	if err := os.WriteFile(docFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	docSum := sha256.Sum256(doc)

	const (
		getCompany   = "VN/GOV/MOF/business-registry/getCompany"
		sendDocument = "VN/GOV/MOF/document-exchange/sendDocument"
		hcmc         = "VN/GOV/HCMC/one-stop"
		mps          = "VN/GOV/MPS/residents"
		acra         = "SG/GOV/ACRA/bizfile"
		taxCode      = "0100109106"
	)
	run := time.Now().UTC().Format("20060102T150405.000000000")
	var calls []*planCall
	add := func(label, client, service string, args map[string]string, attach bool) {
		cid, err := ident.ParseClient(client)
		if err != nil {
			t.Fatal(err)
		}
		sid, err := ident.ParseService(service)
		if err != nil {
			t.Fatal(err)
		}
		cn, ok := conns[client]
		if !ok || providerDir[service] == "" {
			t.Fatalf("the sandbox has no gateway for %s or no SOAP service %s", client, service)
		}
		c := &planCall{
			Label: label, URL: cn.url, TLS: cn.tls, UserID: "interop-tester", ID: "interop-" + label + "-" + run,
			Client: party{Instance: cid.Instance, MemberClass: cid.Class, MemberCode: cid.Code, Subsystem: cid.Subsystem},
			Service: party{Instance: sid.Provider.Instance, MemberClass: sid.Provider.Class, MemberCode: sid.Provider.Code, Subsystem: sid.Provider.Subsystem,
				ServiceCode: sid.Code, ServiceVersion: version[service]},
			WSDLOut: filepath.Join(work, label+".wsdl"), Operation: sid.Code, Args: args,
			consumerDir: cn.dataDir, providerDir: providerDir[service], client: client, service: service,
		}
		if attach {
			c.Attachment = &planAttachment{File: docFile, ContentID: "decision-" + label + "@interop.sampan", ContentType: "application/pdf"}
		}
		calls = append(calls, c)
	}
	add("domestic-getCompany", hcmc, getCompany, map[string]string{"taxCode": taxCode}, false)
	add("cross-border-getCompany", acra, getCompany, map[string]string{"taxCode": taxCode}, false)
	add("domestic-sendDocument-mtom", mps, sendDocument, map[string]string{"title": "Decision 17/2026", "senderReference": "MPS-17"}, true)
	add("domestic-sendDocument", mps, sendDocument, map[string]string{"title": "Notice 18/2026", "senderReference": "MPS-18"}, false)
	add("cross-border-sendDocument-mtom", acra, sendDocument, map[string]string{"title": "Filing 2026-0419", "senderReference": "ACRA-419"}, true)
	add("cross-border-sendDocument", acra, sendDocument, map[string]string{"title": "Filing 2026-0420", "senderReference": "ACRA-420"}, false)

	plan, err := json.Marshal(map[string]any{"metaWsdl": metaWSDL, "calls": calls})
	if err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(work, "plan.json")
	if err := os.WriteFile(planFile, plan, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, driver, planFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the npm soap client failed: %v\n%s\n%s", err, stderr.String(), stdout.String())
	}
	results := map[string]callResult{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r callResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("the driver's output %q: %v", sc.Text(), err)
		}
		results[r.Label] = r
	}

	for _, c := range calls {
		r, ok := results[c.Label]
		if !ok {
			t.Errorf("%s: the driver reported nothing", c.Label)
			continue
		}
		// getWsdl answered the service's description, which the
		// client then used: the WSDL it saved describes the operation.
		if r.GetWsdl.ServiceCode != c.Service.ServiceCode || r.GetWsdl.ServiceVersion != c.Service.ServiceVersion || !strings.HasPrefix(r.GetWsdl.ContentType, "text/xml") {
			t.Errorf("%s: getWsdl answered for %s %s, a %q attachment; want %s %s, text/xml", c.Label, r.GetWsdl.ServiceCode, r.GetWsdl.ServiceVersion, r.GetWsdl.ContentType, c.Service.ServiceCode, c.Service.ServiceVersion)
		}
		if w, err := os.ReadFile(c.WSDLOut); err != nil || !bytes.Contains(w, []byte(`<wsdl:operation name="`+c.Operation+`">`)) {
			t.Errorf("%s: the WSDL received through getWsdl does not describe %s: %v", c.Label, c.Operation, err)
		}
		// Both lists name the service: the caller holds an access right.
		for op, l := range map[string]methodsResult{"listMethods": r.ListMethods, "allowedMethods": r.AllowedMethods} {
			if !slices.Contains(l.Services, c.Operation) {
				t.Errorf("%s: %s answered %q, without %s", c.Label, op, l.Services, c.Operation)
			}
			if l.RequestHash != sha512Base64(l.Request) {
				t.Errorf("%s: the %s answer's requestHash %q, want the SHA-512 of the SOAP part sent", c.Label, op, l.RequestHash)
			}
		}
		// The client sent MTOM when it had a document, a plain envelope
		// otherwise.
		ct := r.Call.RequestHeaders["Content-Type"]
		if mtom := strings.HasPrefix(ct, "multipart/related;") && strings.Contains(ct, `type="application/xop+xml"`); mtom != (c.Attachment != nil) || !mtom && !strings.HasPrefix(ct, "text/xml") {
			t.Errorf("%s: the client sent Content-Type %q", c.Label, ct)
		}
		// requestHash: the SHA-512 of the exact SOAP part sent.
		if want := sha512Base64(r.Call.Request); r.Call.RequestHash != want {
			t.Errorf("%s: answer's requestHash %q, want %q (SHA-512 of the SOAP part sent)", c.Label, r.Call.RequestHash, want)
		}
		switch c.Operation {
		case "getCompany":
			var got struct {
				Company struct{ TaxCode, Name string }
			}
			if err := json.Unmarshal(r.Call.Result, &got); err != nil || got.Company.TaxCode != taxCode || got.Company.Name != "Viettel Group" {
				t.Errorf("%s: answer %s (%v), want the company %s", c.Label, r.Call.Result, err, taxCode)
			}
		case "sendDocument":
			var got receipt
			if err := json.Unmarshal(r.Call.Result, &got); err != nil {
				t.Errorf("%s: receipt %s: %v", c.Label, r.Call.Result, err)
				continue
			}
			if got.Title != c.Args["title"] || got.SenderReference != c.Args["senderReference"] {
				t.Errorf("%s: receipt for %q %q, want %q %q", c.Label, got.Title, got.SenderReference, c.Args["title"], c.Args["senderReference"])
			}
			want := 0
			if c.Attachment != nil {
				want = 1
			}
			if got.DocumentCount != want || len(got.Received) != want {
				t.Errorf("%s: receipt of %d documents (%d listed), want %d", c.Label, got.DocumentCount, len(got.Received), want)
				continue
			}
			if want == 1 {
				rc := got.Received[0]
				if rc.SHA256 != hex.EncodeToString(docSum[:]) || rc.Bytes != int64(len(doc)) || rc.ContentID != c.Attachment.ContentID || rc.ContentType != c.Attachment.ContentType {
					t.Errorf("%s: receipt %+v, want %s, %d bytes of %s, SHA-256 %x", c.Label, rc, c.Attachment.ContentID, len(doc), c.Attachment.ContentType, docSum)
				}
			}
		}
	}

	// Both logs hold each exchange, getWsdl's included, and the bundles
	// verify. Records become exportable once durable and time-stamped.
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range calls {
		for _, x := range []struct{ id, service string }{{c.ID, c.service}, {c.ID + "-getWsdl", serviceOf(c.service, "getWsdl")},
			{c.ID + "-listMethods", serviceOf(c.service, "listMethods")}, {c.ID + "-allowedMethods", serviceOf(c.service, "allowedMethods")}} {
			for _, side := range []struct{ name, dir string }{{"consumer", c.consumerDir}, {"provider", c.providerDir}} {
				b := exportBundle(t, deadline, side.dir, x.id, side.name)
				if b == nil {
					continue
				}
				r := b.Record
				if r.XRoadID != x.id || r.Side != side.name || r.Client != c.client || r.Service != x.service || r.UserID != c.UserID || r.Status != 200 || !b.Signatures {
					t.Errorf("%s's record of %s: %s %s client %s service %s user %q status %d signatures %v; want client %s service %s user %q status 200, signed",
						side.name, x.id, r.Side, r.XRoadID, r.Client, r.Service, r.UserID, r.Status, b.Signatures, c.client, x.service, c.UserID)
				}
			}
		}
	}

	// The getWsdl answers are multipart (the WSDL is an attachment): the
	// consumer's gateway checks their SOAP part and puts requestHash in
	// as it does a text/xml answer's.
	for _, c := range calls {
		if h := results[c.Label].GetWsdl.RequestHash; h == "" {
			t.Errorf("%s: the getWsdl answer (multipart/related) reached the client without xrd:requestHash", c.Label)
		}
	}
}

// sha512Base64 is a requestHash: the base64 SHA-512 of a SOAP part.
func sha512Base64(soapPart string) string {
	sum := sha512.Sum512([]byte(soapPart))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// serviceOf returns service (PROVIDER/CODE) with its code replaced.
func serviceOf(service, code string) string {
	return service[:strings.LastIndex(service, "/")+1] + code
}

// exportBundle exports the evidence bundle of the exchange with X-Road-Id
// id from the side's log in the gateway directory dir, retrying until
// deadline (a record is exported once it is durable and time-stamped),
// and returns its verification report.
func exportBundle(t *testing.T, deadline time.Time, dir, id, side string) *msglog.BundleReport {
	t.Helper()
	for {
		out := filepath.Join(t.TempDir(), "bundle")
		err := msglog.Export(t.Context(), filepath.Join(dir, "log"), "", msglog.Selection{XRoadID: id, Side: side}, out)
		if err == nil {
			b, err := msglog.VerifyBundle(out)
			if err != nil {
				t.Errorf("the %s's bundle of %s does not verify: %v", side, id, err)
				return nil
			}
			return b
		}
		if time.Now().After(deadline) {
			t.Errorf("the %s's record of %s: %v", side, id, err)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}
