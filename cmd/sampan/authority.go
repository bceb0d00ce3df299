package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/pki"
)

// authorityAPI are the flags of a call to an authority's management API.
type authorityAPI struct {
	URL       string `help:"The authority's base URL (its public_url)." required:""`
	TLSCA     string `name:"tls-ca" help:"The authority's TLS CA certificate (tls-ca.crt, installed with the anchor): the only CA trusted for the authority." required:"" type:"existingfile"`
	TokenFile string `help:"File holding the operator's token." required:"" type:"existingfile"`
}

// client returns a management API client that trusts the authority's
// TLS CA alone: never the instance CA, whose gateway certificates could
// otherwise pass for the authority.
func (f *authorityAPI) client() (*authority.Client, error) {
	ca, err := pki.ReadCert(f.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	tok, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	return authority.NewClient(f.URL, strings.TrimSpace(string(tok)), ca), nil
}

func apiContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// AuthorityIssueCmd asks an authority for a certificate.
type AuthorityIssueCmd struct {
	authorityAPI
	Profile string   `help:"auth (a gateway's TLS) or sign (a member's signatures)." required:"" enum:"auth,sign"`
	Subject string   `help:"The gateway (auth) or member (sign) identifier, as registered." required:""`
	CSR     string   `name:"csr" help:"The certificate signing request (PEM)." required:"" type:"existingfile"`
	Hosts   []string `help:"For auth: host names or addresses to certify; each must be the host of the gateway's registered address (default: that host)." sep:","`
	Out     string   `help:"Write the certificate (PEM) to this file." required:"" type:"path"`
}

// Run issues and saves the certificate.
func (c *AuthorityIssueCmd) Run(g *Globals) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	csr, err := os.ReadFile(c.CSR)
	if err != nil {
		return fmt.Errorf("--csr: %w", err)
	}
	ctx, cancel := apiContext()
	defer cancel()
	out, err := api.Issue(ctx, authority.IssueInput{Profile: c.Profile, Subject: c.Subject, CSR: string(csr), Hosts: c.Hosts})
	if err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(c.Out, []byte(out.Certificate), 0o644); err != nil {
		return err
	}
	fmt.Printf("certificate %s written to %s\nserial %s\nsha256 %s\nnot after %s\n", c.Profile, c.Out, out.Serial, out.SHA256, out.NotAfter)
	return nil
}

// AuthorityRevokeCmd revokes a certificate.
type AuthorityRevokeCmd struct {
	authorityAPI
	Serial string `help:"The certificate's serial number (hex, as issued)." required:""`
}

// Run revokes; the next configuration, CRL and OCSP answers name it.
func (c *AuthorityRevokeCmd) Run(g *Globals) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext()
	defer cancel()
	if err := api.Revoke(ctx, c.Serial); err != nil {
		return err
	}
	fmt.Printf("certificate %s revoked\n", c.Serial)
	return nil
}

// AuthorityCertificatesCmd lists the certificates issued.
type AuthorityCertificatesCmd struct {
	authorityAPI
	ID string `name:"id" help:"Show only the certificate with this serial (hex), with its PEM."`
}

// Run prints every certificate, one JSON object a line.
func (c *AuthorityCertificatesCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityCertificatesCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	if c.ID != "" {
		ctx, cancel := apiContext()
		defer cancel()
		cert, err := api.Certificate(ctx, c.ID)
		if err != nil {
			return err
		}
		return json.NewEncoder(w).Encode(cert)
	}
	return printPages(w, 0, func(ctx context.Context, after int64) ([]authority.CertificateInfo, int64, error) {
		p, err := api.Certificates(ctx, after, 1000)
		if err != nil {
			return nil, 0, err
		}
		return p.Items, p.Next, nil
	})
}

// AuthorityAuditCmd reads the audit log.
type AuthorityAuditCmd struct {
	authorityAPI
	After int64 `help:"Start after this entry's id (0: from the first)."`
}

// Run prints the audit log from --after on, one JSON object a line.
func (c *AuthorityAuditCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityAuditCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return printPages(w, c.After, func(ctx context.Context, after int64) ([]authority.AuditEntry, int64, error) {
		p, err := api.Audit(ctx, after, 1000)
		if err != nil {
			return nil, 0, err
		}
		return p.Items, p.Next, nil
	})
}

// printPages follows a read API's pages from the one after from to the
// last, printing each item as a line of JSON.
func printPages[T any](w io.Writer, from int64, page func(ctx context.Context, after int64) ([]T, int64, error)) error {
	enc := json.NewEncoder(w)
	return forPages(from, page, func(it T) error { return enc.Encode(it) })
}

// forPages follows a read API's pages from the one after from to the
// last, calling each for every item.
func forPages[T any](from int64, page func(ctx context.Context, after int64) ([]T, int64, error), each func(T) error) error {
	after := from
	for {
		ctx, cancel := apiContext()
		items, next, err := page(ctx, after)
		cancel()
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := each(it); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		after = next
	}
}

// registryRead are the flags of the commands that read the registry.
type registryRead struct {
	authorityAPI
	ID    string `name:"id" help:"Show only the one with this identifier."`
	After int64  `help:"Start after this position: the next of a page of the API (0: from the first)."`
	JSON  bool   `name:"json" help:"Print one JSON object a line instead of a table."`
}

// readRegistry prints one object (--id) or every one from --after on,
// as a table (header, then row of each) or as lines of JSON.
func readRegistry[T any](w io.Writer, f *registryRead,
	one func(context.Context, string) (*T, error),
	list func(context.Context, int64, int) (*authority.Page[T], error),
	header string, row func(T) []string) error {
	page := func(ctx context.Context, after int64) ([]T, int64, error) {
		if f.ID != "" {
			it, err := one(ctx, f.ID)
			if err != nil {
				return nil, 0, err
			}
			return []T{*it}, 0, nil
		}
		p, err := list(ctx, after, 1000)
		if err != nil {
			return nil, 0, err
		}
		return p.Items, p.Next, nil
	}
	if f.JSON {
		return printPages(w, f.After, page)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	err := forPages(f.After, page, func(it T) error {
		_, err := fmt.Fprintln(tw, strings.Join(row(it), "\t"))
		return err
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// list is a table cell of a list: its items, or "-".
func list(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

// AuthorityMembersCmd lists the registered members.
type AuthorityMembersCmd struct{ registryRead }

// Run prints the members.
func (c *AuthorityMembersCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityMembersCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return readRegistry(w, &c.registryRead, api.Member, api.Members, "ID\tNAME\tSUBSYSTEMS\tCREATED",
		func(m authority.MemberInfo) []string {
			return []string{m.ID, m.Name, fmt.Sprint(m.Subsystems), m.CreatedAt}
		})
}

// AuthoritySubsystemsCmd lists the registered subsystems.
type AuthoritySubsystemsCmd struct{ registryRead }

// Run prints the subsystems.
func (c *AuthoritySubsystemsCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthoritySubsystemsCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return readRegistry(w, &c.registryRead, api.Subsystem, api.Subsystems, "ID\tMEMBER\tOTHER GATEWAYS ALLOWED\tSERVED BY\tCREATED",
		func(s authority.SubsystemInfo) []string {
			return []string{s.ID, s.Member, list(s.Gateways), list(s.ServedBy), s.CreatedAt}
		})
}

// AuthorityGatewaysCmd lists the registered gateways.
type AuthorityGatewaysCmd struct{ registryRead }

// Run prints the gateways.
func (c *AuthorityGatewaysCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityGatewaysCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return readRegistry(w, &c.registryRead, api.Gateway, api.Gateways, "ID\tADDRESS\tAUTH CERTIFICATE\tCLIENTS\tUPDATED",
		func(g authority.GatewayInfo) []string {
			cert := "none"
			switch {
			case g.AuthCert != nil:
				cert = fmt.Sprintf("serial %s, %s until %s", g.AuthCert.Serial, g.AuthCert.Status, g.AuthCert.NotAfter)
			case g.AuthFP != "":
				cert = "sha256 " + g.AuthFP
			}
			return []string{g.ID, g.Address, cert, list(g.Clients), g.UpdatedAt}
		})
}

// AuthorityGroupsCmd lists the global groups.
type AuthorityGroupsCmd struct{ registryRead }

// Run prints the global groups.
func (c *AuthorityGroupsCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityGroupsCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return readRegistry(w, &c.registryRead, api.Group, api.Groups, "ID\tMEMBERS\tDESCRIPTION",
		func(g authority.GroupInfo) []string {
			return []string{g.ID, list(g.Members), g.Description}
		})
}

// AuthorityFederationCmd lists the federated instances.
type AuthorityFederationCmd struct{ registryRead }

// Run prints the federated instances.
func (c *AuthorityFederationCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityFederationCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return readRegistry(w, &c.registryRead, api.Federation, api.Federations, "INSTANCE\tANCHOR URL\tKEY IDS\tINBOUND CLIENTS\tUPDATED",
		func(f authority.FederationInfo) []string {
			return []string{f.Instance, f.AnchorURL, list(f.KeyIDs), list(f.InboundClients), f.UpdatedAt}
		})
}
