package sandbox

import (
	"fmt"
	"io"
	"strings"

	"github.com/sampan-exchange/sampan/gateway"
)

// The Vietnamese half of the sandbox world (DESIGN §7).

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
	dataClass   string
	flags       []string
	endpoints   []string
	access      []gateway.AccessRight
}

type gatewayDef struct {
	id       string
	clients  []string
	services []serviceDef
}

var world = struct {
	instance string
	members  []memberDef
	groups   []groupDef
	gateways []gatewayDef
}{
	instance: "VN",
	members: []memberDef{
		{"VN/GOV/MOF", "Ministry of Finance", []string{"business-registry"}},
		{"VN/GOV/MPS", "Ministry of Public Security", []string{"residents", "cybercrime"}},
		{"VN/GOV/HCMC", "Ho Chi Minh City People's Committee", []string{"one-stop"}},
	},
	groups: []groupDef{
		{"VN/provincial-one-stops", "One-stop shops of the provinces and cities", []string{"VN/GOV/HCMC/one-stop"}},
	},
	gateways: []gatewayDef{
		{
			id:      "VN/GOV/MOF/gw1",
			clients: []string{"VN/GOV/MOF/business-registry"},
			services: []serviceDef{
				{
					id: "VN/GOV/MOF/business-registry/companies", title: "Company registration",
					backendPath: "/companies", openAPIPath: "/{taxCode}", example: "/0100109106",
					dataClass: "public",
					endpoints: []string{"GET /", "GET /*"},
					access:    []gateway.AccessRight{{Subject: "VN/provincial-one-stops"}},
				},
				{
					id: "VN/GOV/MOF/business-registry/filings", title: "Annual statements",
					backendPath: "/filings", openAPIPath: "/", example: "/",
					dataClass: "internal",
					endpoints: []string{"GET /", "POST /"},
					access: []gateway.AccessRight{
						{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "GET /"},
						{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "POST /"},
					},
				},
			},
		},
		{
			id:      "VN/GOV/MPS/gw1",
			clients: []string{"VN/GOV/MPS/residents", "VN/GOV/MPS/cybercrime"},
			services: []serviceDef{
				{
					id: "VN/GOV/MPS/residents/persons", title: "Resident records",
					backendPath: "/persons", openAPIPath: "/{id}", example: "/079200001234",
					dataClass: "restricted", flags: []string{"personal", "core"},
					endpoints: []string{"GET /*"},
					access:    []gateway.AccessRight{{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "GET /*"}},
				},
				{
					id: "VN/GOV/MPS/cybercrime/scam-reports", title: "Scam reports",
					backendPath: "/scam-reports", openAPIPath: "/", example: "/",
					dataClass: "confidential", flags: []string{"personal"},
					endpoints: []string{"GET /", "POST /"},
					// One-stop shops take scam reports from citizens and
					// check numbers against them.
					access: []gateway.AccessRight{{Subject: "VN/provincial-one-stops"}},
				},
			},
		},
		{
			id:      "VN/GOV/HCMC/gw1",
			clients: []string{"VN/GOV/HCMC/one-stop"},
		},
	},
}

// PrintWelcome writes what runs where and requests to copy and paste.
func (s *Sandbox) PrintWelcome(w io.Writer) {
	m := s.Manifest
	var hcmc ManifestGateway
	for _, g := range m.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			hcmc = g
		}
	}
	fmt.Fprintf(w, "Sampan sandbox is running (state in %s).\n\n", s.Dir)
	for _, a := range m.Authorities {
		fmt.Fprintf(w, "  authority %-3s %s   anchor %s\n", a.Instance, a.URL, a.AnchorFile)
	}
	for _, g := range m.Gateways {
		fmt.Fprintf(w, "  gateway %-16s clients at %s   serves %s\n", g.ID, g.ClientURL, strings.Join(g.Clients, ", "))
	}
	fmt.Fprintf(w, "\nHCMC's one-stop system calls through its gateway:\n\n")
	c := fmt.Sprintf("curl -sS -H 'X-Road-Client: VN/GOV/HCMC/one-stop' %s/r1/", hcmc.ClientURL)
	fmt.Fprintf(w, "  # a company from MOF's business registry (public)\n  %sVN/GOV/MOF/business-registry/companies/0100109106\n\n", c)
	fmt.Fprintf(w, "  # a resident record from MPS (restricted, personal)\n  %sVN/GOV/MPS/residents/persons/079200001234\n\n", c)
	fmt.Fprintf(w, "  # file an annual statement with MOF (any size; answers with its SHA-256)\n  %sVN/GOV/MOF/business-registry/filings --data-binary @/etc/hostname\n\n", c)
	fmt.Fprintf(w, "  # refused: HCMC may read one resident record, not list them all\n  %sVN/GOV/MPS/residents/persons\n\n", c)
	fmt.Fprintf(w, "  # metaservices\n  %sVN/GOV/MOF/business-registry/listMethods\n  %sVN/listClients\n\n", c, strings.TrimSuffix(c, "/r1/")+"/r1/")
	fmt.Fprintf(w, "Everything is described in %s/%s. Stop with Ctrl-C; the next start reuses the directory (remove it to start afresh).\n", s.Dir, manifestFile)
}
