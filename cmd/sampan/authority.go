package main

import (
	"context"
	"fmt"
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
