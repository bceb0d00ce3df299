package sandbox

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
)

// The sandbox world (DESIGN §7): Vietnam and Singapore, federated.

type memberDef struct {
	id, name   string
	subsystems []string
}

type groupDef struct {
	id, description string
	members         []string
}

type serviceDef struct {
	id          string
	title       string
	backendPath string // on the demo backends server
	openAPIPath string
	example     string // a path under the service that answers 200
	// exampleClient may call the example, declaring examplePurpose.
	exampleClient  string
	examplePurpose string
	dataClass      string
	flags          []string
	endpoints      []string
	access         []gateway.AccessRight

	// protocol is gateway.ProtocolSOAP for a SOAP service (REST when
	// empty); the rest of the fields are a SOAP service's.
	protocol string
	// wsdl names the service's WSDL among the embedded ones (soap.go).
	wsdl string
	// version is the serviceVersion the example requests name.
	version string
	// exampleBody is the example request's operation element, referring
	// to an attachment by swaRef (SOAP with attachments) or xopHref
	// (MTOM) when one is given.
	exampleBody func(swaRef, xopHref string) []byte
	// attachments says the examples include messages with an attachment.
	attachments bool
	// crossBorderClient, when set, gets example requests of its own.
	crossBorderClient string
}

type gatewayDef struct {
	id       string
	clients  []string
	services []serviceDef
	// storeBodies lists subsystems whose bodies the gateway keeps
	// (encrypted); retention is how long its records are kept.
	storeBodies []string
	retention   time.Duration
	// certClients are client subsystems whose information systems must
	// connect over HTTPS with a registered client certificate; the
	// others connect over plain HTTP, the sandbox's choice for a world
	// on loopback.
	certClients []string
}

type instanceDef struct {
	code     string
	members  []memberDef
	groups   []groupDef
	gateways []gatewayDef
	// agreements for this instance's services, registered at its
	// authority; the national rules are policy.National(code).
	agreements []policy.Agreement
}

var agreementsFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func services(ids ...string) []ident.ServiceID {
	out := make([]ident.ServiceID, len(ids))
	for i, s := range ids {
		id, err := ident.ParseService(s)
		if err != nil {
			panic(err)
		}
		out[i] = id
	}
	return out
}

var world = []instanceDef{
	{
		code: "VN",
		members: []memberDef{
			{"VN/GOV/MOF", "Ministry of Finance", []string{"business-registry", "document-exchange"}},
			{"VN/GOV/MPS", "Ministry of Public Security", []string{"residents", "cybercrime"}},
			{"VN/GOV/HCMC", "Ho Chi Minh City People's Committee", []string{"one-stop"}},
			aiMember,
		},
		groups: []groupDef{
			{"VN/provincial-one-stops", "One-stop shops of the provinces and cities", []string{"VN/GOV/HCMC/one-stop"}},
		},
		gateways: []gatewayDef{
			{
				id:      "VN/GOV/MOF/gw1",
				clients: []string{"VN/GOV/MOF/business-registry", "VN/GOV/MOF/document-exchange"},
				services: []serviceDef{
					{
						id: "VN/GOV/MOF/business-registry/companies", title: "Company registration",
						backendPath: "/companies", openAPIPath: "/{taxCode}", example: "/0100109106", exampleClient: "VN/GOV/HCMC/one-stop",
						dataClass: "public",
						endpoints: []string{"GET /", "GET /*"},
						access: []gateway.AccessRight{
							{Subject: "VN/provincial-one-stops"},
							{Subject: "SG/GOV/ACRA/bizfile", Endpoint: "GET /*"},
						},
					},
					{
						id: "VN/GOV/MOF/business-registry/filings", title: "Annual statements",
						backendPath: "/filings", openAPIPath: "/", example: "/", exampleClient: "VN/GOV/HCMC/one-stop",
						dataClass: "internal",
						endpoints: []string{"GET /", "POST /"},
						access: []gateway.AccessRight{
							{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "GET /"},
							{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "POST /"},
						},
					},
					{
						// The registry's SOAP face (X-Road message
						// protocol 4.0), answered from the same data.
						id: "VN/GOV/MOF/business-registry/getCompany", title: "Company registration (SOAP)",
						protocol: gateway.ProtocolSOAP, wsdl: "business-registry.wsdl", version: "v1",
						backendPath: pathGetCompany, exampleClient: "VN/GOV/HCMC/one-stop", crossBorderClient: "SG/GOV/ACRA/bizfile",
						exampleBody: func(_, _ string) []byte { return getCompanyBody("0100109106") },
						dataClass:   "public",
						access:      []gateway.AccessRight{{Subject: "VN/GOV/HCMC/one-stop"}, {Subject: "SG/GOV/ACRA/bizfile"}},
					},
					{
						// Documents between ministries, as SOAP
						// attachments. Internal data without personal
						// flags: no national rule of either country
						// governs it, so no agreement is needed to send
						// it across the border.
						id: "VN/GOV/MOF/document-exchange/sendDocument", title: "Document exchange",
						protocol: gateway.ProtocolSOAP, wsdl: "document-exchange.wsdl", version: "v1",
						backendPath: pathSendDocument, exampleClient: "VN/GOV/MPS/residents", crossBorderClient: "SG/GOV/ACRA/bizfile",
						exampleBody: func(swaRef, xopHref string) []byte {
							return sendDocumentBody(exampleDocTitle, exampleDocSender, swaRef, xopHref)
						},
						attachments: true,
						dataClass:   "internal",
						access:      []gateway.AccessRight{{Subject: "VN/GOV/MPS/residents"}, {Subject: "SG/GOV/ACRA/bizfile"}},
					},
				},
			},
			{
				id: "VN/GOV/MPS/gw1",
				// Scam reports carry personal data: the bilateral
				// agreement asks both sides to keep them 90 days.
				storeBodies: []string{"VN/GOV/MPS/cybercrime"},
				retention:   90 * 24 * time.Hour,
				clients:     []string{"VN/GOV/MPS/residents", "VN/GOV/MPS/cybercrime"},
				services: append([]serviceDef{
					{
						id: "VN/GOV/MPS/residents/persons", title: "Resident records",
						backendPath: "/persons", openAPIPath: "/{id}", example: "/079200001234", exampleClient: "VN/GOV/HCMC/one-stop",
						examplePurpose: "administrative-procedure",
						dataClass:      "restricted", flags: []string{"personal", "core"},
						endpoints: []string{"GET /*"},
						// SPF holds an access right too, to show that a
						// right cannot override national law: Vietnam's
						// core rule refuses the record to any foreign client.
						access: []gateway.AccessRight{{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "GET /*"}, {Subject: "SG/GOV/SPF/anti-scam", Endpoint: "GET /*"}},
					},
					{
						id: "VN/GOV/MPS/cybercrime/scam-reports", title: "Scam reports",
						backendPath: "/scam-reports", openAPIPath: "/", example: "/", exampleClient: "SG/GOV/SPF/anti-scam",
						examplePurpose: "scam-investigation",
						dataClass:      "confidential", flags: []string{"personal"},
						endpoints: []string{"GET /", "POST /"},
						// One-stop shops take scam reports from citizens;
						// Singapore's police exchange them with MPS.
						access: []gateway.AccessRight{{Subject: "VN/provincial-one-stops"}, {Subject: "SG/GOV/SPF/anti-scam"}},
					},
				}, aiServiceDefs()...),
			},
			{
				id:      "VN/GOV/HCMC/gw1",
				clients: []string{"VN/GOV/HCMC/one-stop"},
			},
			aiGateway,
		},
		agreements: []policy.Agreement{
			{
				ID: "VN-HCMC-RESIDENTS-2026", Consumers: []string{"VN/GOV/HCMC/one-stop"},
				Services:   services("VN/GOV/MPS/residents/persons"),
				Purposes:   []string{"administrative-procedure"},
				LegalBasis: []string{"decree-104-2022"}, ValidFrom: agreementsFrom,
				Responsible: []string{"MPS Department of Administrative Police for Social Order"},
				Status:      policy.StatusActive,
			},
			{
				ID: "VN-ONESTOP-SCAM-2026", Consumers: []string{"VN/GOV/HCMC/one-stop"},
				Services:  services("VN/GOV/MPS/cybercrime/scam-reports"),
				Purposes:  []string{"citizen-report"},
				ValidFrom: agreementsFrom, Status: policy.StatusActive,
			},
			{
				ID: "VN-SG-SCAM-2026", Consumers: []string{"SG/GOV/SPF/anti-scam"},
				Services:     services("VN/GOV/MPS/cybercrime/scam-reports"),
				Purposes:     []string{"scam-investigation"},
				LegalBasis:   []string{"decree-13-2023-art25"},
				Destinations: []string{"SG"}, ValidFrom: agreementsFrom, RetentionDays: 90, QuotaPerDay: 10000,
				References:  []policy.Reference{{Kind: policy.RefTransferAssessment, Ref: "MPS-TIA-2026-014 (dossier filed with A05)"}},
				Responsible: []string{"MPS Department of Cybersecurity and High-Tech Crime Prevention"},
				Status:      policy.StatusActive,
			},
			aiAgreement,
			classifierAgreement,
		},
	},
	{
		code: "SG",
		members: []memberDef{
			{"SG/GOV/ACRA", "Accounting and Corporate Regulatory Authority", []string{"bizfile"}},
			{"SG/GOV/SPF", "Singapore Police Force", []string{"anti-scam"}},
		},
		gateways: []gatewayDef{
			{
				id:      "SG/GOV/ACRA/gw1",
				clients: []string{"SG/GOV/ACRA/bizfile"},
				// ACRA's information system proves itself with its TLS
				// client certificate (connection type https-certs).
				certClients: []string{"SG/GOV/ACRA/bizfile"},
				services: []serviceDef{
					{
						id: "SG/GOV/ACRA/bizfile/entities", title: "Business entities",
						backendPath: "/sg/entities", openAPIPath: "/{uen}", example: "/199201624D", exampleClient: "VN/GOV/MOF/business-registry",
						dataClass: "public",
						endpoints: []string{"GET /*"},
						access:    []gateway.AccessRight{{Subject: "VN/GOV/MOF/business-registry", Endpoint: "GET /*"}},
					},
				},
			},
			{
				id:          "SG/GOV/SPF/gw1",
				storeBodies: []string{"SG/GOV/SPF/anti-scam"},
				retention:   90 * 24 * time.Hour,
				clients:     []string{"SG/GOV/SPF/anti-scam"},
				services: []serviceDef{
					{
						id: "SG/GOV/SPF/anti-scam/scam-reports", title: "Scam reports",
						backendPath: "/sg/scam-reports", openAPIPath: "/", example: "/", exampleClient: "VN/GOV/MPS/cybercrime",
						examplePurpose: "scam-investigation",
						dataClass:      "confidential", flags: []string{"personal"},
						endpoints: []string{"GET /", "POST /"},
						access:    []gateway.AccessRight{{Subject: "VN/GOV/MPS/cybercrime"}},
					},
				},
			},
		},
		agreements: []policy.Agreement{{
			ID: "SG-VN-SCAM-2026", Consumers: []string{"VN/GOV/MPS/cybercrime"},
			Services:     services("SG/GOV/SPF/anti-scam/scam-reports"),
			Purposes:     []string{"scam-investigation"},
			LegalBasis:   []string{"pdpa-s26"},
			Destinations: []string{"VN"}, ValidFrom: agreementsFrom, RetentionDays: 90, QuotaPerDay: 10000,
			References:  []policy.Reference{{Kind: policy.RefComparableProtection, Ref: "SPF-MPS memorandum on scam information sharing (2026), binding corporate-equivalent clauses"}},
			Responsible: []string{"SPF Anti-Scam Command data protection officer"},
			Status:      policy.StatusActive,
		}},
	},
}

// PrintWelcome writes what runs where and requests to copy and paste.
func (s *Sandbox) PrintWelcome(w io.Writer) {
	m := s.Manifest
	url, tlsOpts := map[string]string{}, map[string]string{}
	for _, g := range m.Gateways {
		url[g.ID] = g.ClientURL
		for _, c := range g.ClientConnections {
			if c.CertFile != "" {
				tlsOpts[c.Subsystem] = fmt.Sprintf(" --cacert %s --cert %s --key %s", g.ClientTLSCAFile, c.CertFile, c.KeyFile)
				url[g.ID+" "+c.Subsystem] = g.ClientTLSURL
			}
		}
	}
	fmt.Fprintf(w, "Sampan sandbox is running (state in %s).\n\n", s.Dir)
	for _, a := range m.Authorities {
		fmt.Fprintf(w, "  authority %-3s %s   anchor %s   operations %s\n", a.Instance, a.URL, a.AnchorFile, a.OpsURL)
	}
	for _, g := range m.Gateways {
		fmt.Fprintf(w, "  gateway %-16s clients at %s   operations %s   serves %s\n", g.ID, g.ClientURL, g.OpsURL, strings.Join(g.Clients, ", "))
	}
	curl := func(gw, client string, purpose ...string) string {
		h := ""
		for _, p := range purpose {
			h += " -H 'X-Road-Purpose: " + p + "'"
		}
		if u, ok := url[gw+" "+client]; ok {
			return fmt.Sprintf("curl -sS%s -H 'X-Road-Client: %s'%s %s/r1/", tlsOpts[client], client, h, u)
		}
		return fmt.Sprintf("curl -sS -H 'X-Road-Client: %s'%s %s/r1/", client, h, url[gw])
	}
	c := curl("VN/GOV/HCMC/gw1", "VN/GOV/HCMC/one-stop")
	fmt.Fprintf(w, "\nHCMC's one-stop system calls through its gateway:\n\n")
	fmt.Fprintf(w, "  # a company from MOF's business registry (public)\n  %sVN/GOV/MOF/business-registry/companies/0100109106\n\n", c)
	fmt.Fprintf(w, "  # a resident record from MPS (restricted, personal, core), under agreement VN-HCMC-RESIDENTS-2026\n  %sVN/GOV/MPS/residents/persons/079200001234\n\n", curl("VN/GOV/HCMC/gw1", "VN/GOV/HCMC/one-stop", "administrative-procedure"))
	fmt.Fprintf(w, "  # refused by Vietnam's rule for personal data: no purpose declared\n  %sVN/GOV/MPS/residents/persons/079200001234\n\n", c)
	fmt.Fprintf(w, "  # file an annual statement with MOF (any size; answers with its SHA-256)\n  %sVN/GOV/MOF/business-registry/filings --data-binary @/etc/hostname\n\n", c)
	fmt.Fprintf(w, "  # refused: HCMC may read one resident record, not list them all (no access right)\n  %sVN/GOV/MPS/residents/persons\n\n", curl("VN/GOV/HCMC/gw1", "VN/GOV/HCMC/one-stop", "administrative-procedure"))
	fmt.Fprintf(w, "  # metaservices\n  %sVN/GOV/MOF/business-registry/listMethods\n  %sVN/listClients\n\n", c, c)
	fmt.Fprintf(w, "Across the border, each side verifying the other under its own authority:\n\n")
	fmt.Fprintf(w, "  # Singapore's ACRA looks up a Vietnamese company (its system connects over HTTPS with its client certificate)\n  %sVN/GOV/MOF/business-registry/companies/0300588569\n\n", curl("SG/GOV/ACRA/gw1", "SG/GOV/ACRA/bizfile"))
	fmt.Fprintf(w, "  # refused: the same call without ACRA's client certificate\n  curl -sS -H 'X-Road-Client: SG/GOV/ACRA/bizfile' %s/r1/VN/GOV/MOF/business-registry/companies/0300588569\n\n", url["SG/GOV/ACRA/gw1"])
	fmt.Fprintf(w, "  # Vietnam's MOF looks up a Singapore entity\n  %sSG/GOV/ACRA/bizfile/entities/199201624D\n\n", curl("VN/GOV/MOF/gw1", "VN/GOV/MOF/business-registry"))
	fmt.Fprintf(w, "  # MPS and SPF exchange scam reports (personal) under their bilateral agreements\n  %sSG/GOV/SPF/anti-scam/scam-reports\n", curl("VN/GOV/MPS/gw1", "VN/GOV/MPS/cybercrime", "scam-investigation"))
	fmt.Fprintf(w, "  %sVN/GOV/MPS/cybercrime/scam-reports\n\n", curl("SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam", "scam-investigation"))
	fmt.Fprintf(w, "  # refused by Vietnam's core rule: resident records never leave Vietnam\n  %sVN/GOV/MPS/residents/persons/079200001234\n\n", curl("SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam", "scam-investigation"))
	fmt.Fprintf(w, "  # refused by Singapore's rule: the same request without a purpose\n  %sVN/GOV/MPS/residents/persons/079200001234\n\n", curl("SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam"))
	s.printSOAPWelcome(w, url, tlsOpts)
	s.printAIWelcome(w, curl)
	fmt.Fprintf(w, "The authorities answer over TLS of their own CA (tls_ca_file in %s), never the CA of the gateways:\n\n", manifestFile)
	for _, a := range m.Authorities {
		fmt.Fprintf(w, "  # %s: the registry as published (management API), and the CRL\n", a.Instance)
		fmt.Fprintf(w, "  %s\n", AuthorityCurl(a, "-H \"Authorization: Bearer $(cat "+a.TokenFile+")\" ", "/api/v1/configuration"))
		fmt.Fprintf(w, "  %s -o %s.crl && openssl crl -inform DER -in %s.crl -noout -text\n", AuthorityCurl(a, "", "/crl"), a.Instance, a.Instance)
		for _, g := range m.Gateways {
			if g.Instance == a.Instance {
				fmt.Fprintf(w, "  # the OCSP status of %s's authentication certificate (signed by the instance CA)\n", g.ID)
				fmt.Fprintf(w, "  openssl ocsp -issuer %s -CAfile %s -cert %s -url %s/ocsp\n", a.CAFile, a.CAFile, filepath.Join(g.DataDir, "auth.crt"), strings.TrimSuffix(a.URL, "/"))
				break
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Everything is described in %s/%s. Stop with Ctrl-C; the next start reuses the directory (remove it to start afresh).\n", s.Dir, manifestFile)
}

// AuthorityCurl is a curl command for an authority's endpoint path,
// trusting only the authority's TLS CA; opts go before the URL.
func AuthorityCurl(a ManifestAuthority, opts, path string) string {
	return fmt.Sprintf("curl -sS --cacert %s %s%s%s", a.TLSCAFile, opts, strings.TrimSuffix(a.URL, "/"), path)
}
