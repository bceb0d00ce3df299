package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
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
}

// Run prints every certificate, one JSON object a line.
func (c *AuthorityCertificatesCmd) Run(g *Globals) error { return c.print(os.Stdout) }

func (c *AuthorityCertificatesCmd) print(w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return printPages(w, func(ctx context.Context, after int64) ([]authority.CertificateInfo, int64, error) {
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
	first := true
	return printPages(w, func(ctx context.Context, after int64) ([]authority.AuditEntry, int64, error) {
		if first {
			after, first = c.After, false
		}
		p, err := api.Audit(ctx, after, 1000)
		if err != nil {
			return nil, 0, err
		}
		return p.Items, p.Next, nil
	})
}

// printPages follows a read API's pages to the last, printing each item
// as a line of JSON.
func printPages[T any](w io.Writer, page func(ctx context.Context, after int64) ([]T, int64, error)) error {
	enc := json.NewEncoder(w)
	after := int64(0)
	for {
		ctx, cancel := apiContext()
		items, next, err := page(ctx, after)
		cancel()
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		after = next
	}
}
