package authority

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/policy"
)

// Client calls an authority's management API as one operator.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client that trusts the authority's CA.
func NewClient(baseURL, token string, ca *x509.Certificate) *Client {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &Client{
		BaseURL: strings.TrimSuffix(baseURL, "/"),
		Token:   token,
		HTTP: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		},
	}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e apiError
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// AddMember registers a member.
func (c *Client) AddMember(ctx context.Context, in MemberInput) error {
	return c.do(ctx, http.MethodPost, "/api/v1/members", in, nil)
}

// AddSubsystem registers a subsystem.
func (c *Client) AddSubsystem(ctx context.Context, in SubsystemInput) error {
	return c.do(ctx, http.MethodPost, "/api/v1/subsystems", in, nil)
}

// PutSubsystem registers a subsystem or replaces the gateways of other
// members it names as its providers.
func (c *Client) PutSubsystem(ctx context.Context, in SubsystemInput) error {
	return c.do(ctx, http.MethodPut, "/api/v1/subsystems", in, nil)
}

// PutGateway registers or updates a gateway.
func (c *Client) PutGateway(ctx context.Context, in GatewayInput) error {
	return c.do(ctx, http.MethodPut, "/api/v1/gateways", in, nil)
}

// PutGroup registers or replaces a global group.
func (c *Client) PutGroup(ctx context.Context, in GroupInput) error {
	return c.do(ctx, http.MethodPut, "/api/v1/groups", in, nil)
}

// Issue asks for a certificate.
func (c *Client) Issue(ctx context.Context, in IssueInput) (*IssuedCert, error) {
	var out IssuedCert
	if err := c.do(ctx, http.MethodPost, "/api/v1/certificates", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes a certificate by hex serial.
func (c *Client) Revoke(ctx context.Context, serial string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/certificates/"+serial+"/revoke", nil, nil)
}

// PutFederation trusts a foreign instance's anchor.
func (c *Client) PutFederation(ctx context.Context, in FederationInput) error {
	return c.do(ctx, http.MethodPut, "/api/v1/federation", in, nil)
}

// RemoveFederation stops trusting a foreign instance.
func (c *Client) RemoveFederation(ctx context.Context, instance string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/federation/"+url.PathEscape(instance), nil, nil)
}

// PutServiceClass declares a service's data class and flags.
func (c *Client) PutServiceClass(ctx context.Context, in policy.ServiceClass) error {
	return c.do(ctx, http.MethodPut, "/api/v1/policy/services", in, nil)
}

// PutAgreement registers or replaces an agreement.
func (c *Client) PutAgreement(ctx context.Context, in policy.Agreement) error {
	return c.do(ctx, http.MethodPut, "/api/v1/policy/agreements", in, nil)
}

// SetAgreementStatus suspends, resumes or terminates an agreement.
func (c *Client) SetAgreementStatus(ctx context.Context, id string, in StatusInput) error {
	return c.do(ctx, http.MethodPost, "/api/v1/policy/agreements/"+url.PathEscape(id)+"/status", in, nil)
}

// PutRules replaces the national rules.
func (c *Client) PutRules(ctx context.Context, rules []policy.Rule) error {
	return c.do(ctx, http.MethodPut, "/api/v1/policy/rules", rules, nil)
}

// PutSuspension suspends a class of flows.
func (c *Client) PutSuspension(ctx context.Context, in policy.Suspension) error {
	return c.do(ctx, http.MethodPut, "/api/v1/policy/suspensions", in, nil)
}

// RemoveSuspension resumes flows.
func (c *Client) RemoveSuspension(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/policy/suspensions/"+url.PathEscape(id), nil, nil)
}

// Certificates lists a page of the certificates issued, after the id
// after (0: from the first).
func (c *Client) Certificates(ctx context.Context, after int64, limit int) (*Page[CertificateInfo], error) {
	var out Page[CertificateInfo]
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/certificates?after=%d&limit=%d", after, limit), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Audit reads a page of the audit log, after the id after (0: from the
// first).
func (c *Client) Audit(ctx context.Context, after int64, limit int) (*Page[AuditEntry], error) {
	var out Page[AuditEntry]
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/audit?after=%d&limit=%d", after, limit), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// getPage reads a page of a read API at path, after the id after (0:
// from the first).
func getPage[T any](ctx context.Context, c *Client, path string, after int64, limit int) (*Page[T], error) {
	var out Page[T]
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s?after=%d&limit=%d", path, after, limit), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// getOne reads one object of a read API at path, by its id.
func getOne[T any](ctx context.Context, c *Client, path, id string) (*T, error) {
	var out T
	if err := c.do(ctx, http.MethodGet, path+"/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Members lists a page of the registered members.
func (c *Client) Members(ctx context.Context, after int64, limit int) (*Page[MemberInfo], error) {
	return getPage[MemberInfo](ctx, c, "/api/v1/members", after, limit)
}

// Member reads a registered member.
func (c *Client) Member(ctx context.Context, id string) (*MemberInfo, error) {
	return getOne[MemberInfo](ctx, c, "/api/v1/members", id)
}

// Subsystems lists a page of the registered subsystems.
func (c *Client) Subsystems(ctx context.Context, after int64, limit int) (*Page[SubsystemInfo], error) {
	return getPage[SubsystemInfo](ctx, c, "/api/v1/subsystems", after, limit)
}

// Subsystem reads a registered subsystem.
func (c *Client) Subsystem(ctx context.Context, id string) (*SubsystemInfo, error) {
	return getOne[SubsystemInfo](ctx, c, "/api/v1/subsystems", id)
}

// Gateways lists a page of the registered gateways.
func (c *Client) Gateways(ctx context.Context, after int64, limit int) (*Page[GatewayInfo], error) {
	return getPage[GatewayInfo](ctx, c, "/api/v1/gateways", after, limit)
}

// Gateway reads a registered gateway.
func (c *Client) Gateway(ctx context.Context, id string) (*GatewayInfo, error) {
	return getOne[GatewayInfo](ctx, c, "/api/v1/gateways", id)
}

// Groups lists a page of the global groups.
func (c *Client) Groups(ctx context.Context, after int64, limit int) (*Page[GroupInfo], error) {
	return getPage[GroupInfo](ctx, c, "/api/v1/groups", after, limit)
}

// Group reads a global group.
func (c *Client) Group(ctx context.Context, id string) (*GroupInfo, error) {
	return getOne[GroupInfo](ctx, c, "/api/v1/groups", id)
}

// Federations lists a page of the federated instances.
func (c *Client) Federations(ctx context.Context, after int64, limit int) (*Page[FederationInfo], error) {
	return getPage[FederationInfo](ctx, c, "/api/v1/federation", after, limit)
}

// Federation reads a federated instance.
func (c *Client) Federation(ctx context.Context, instance string) (*FederationInfo, error) {
	return getOne[FederationInfo](ctx, c, "/api/v1/federation", instance)
}

// Certificate reads an issued certificate, with its PEM, by hex serial.
func (c *Client) Certificate(ctx context.Context, serial string) (*CertificateInfo, error) {
	return getOne[CertificateInfo](ctx, c, "/api/v1/certificates", serial)
}

// Rotation reports where the key and CA rotations stand.
func (c *Client) Rotation(ctx context.Context) (*RotationStatus, error) {
	var out RotationStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/rotation", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rotate takes one rotation step: what is "conf-key" or "ca", step is
// "prepare", "activate" or "retire".
func (c *Client) Rotate(ctx context.Context, what, step string, in RotateInput) (*RotationStatus, error) {
	var out RotationStatus
	if err := c.do(ctx, http.MethodPost, "/api/v1/rotation/"+url.PathEscape(what)+"/"+url.PathEscape(step), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutAIService registers an AI service's model card and risk
// classification.
func (c *Client) PutAIService(ctx context.Context, in AIServiceInput) error {
	return c.do(ctx, http.MethodPut, "/api/v1/ai/services", in, nil)
}

// PutAITestingBodies replaces the accredited AI testing bodies.
func (c *Client) PutAITestingBodies(ctx context.Context, in TestingBodiesInput) error {
	return c.do(ctx, http.MethodPut, "/api/v1/ai/testing-bodies", in, nil)
}

// SubmitAIReport submits a signed evaluation report.
func (c *Client) SubmitAIReport(ctx context.Context, in ReportSubmission) (*AIReport, error) {
	var out AIReport
	if err := c.do(ctx, http.MethodPost, "/api/v1/ai/reports", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WithdrawAIReport withdraws an accepted evaluation report.
func (c *Client) WithdrawAIReport(ctx context.Context, digest, reason string) (*AIReport, error) {
	var out AIReport
	if err := c.do(ctx, http.MethodPost, "/api/v1/ai/reports/"+url.PathEscape(digest)+"/withdraw", WithdrawInput{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AIServices reads the registry of AI services.
func (c *Client) AIServices(ctx context.Context) (*AIRegistry, error) {
	var out AIRegistry
	if err := c.do(ctx, http.MethodGet, "/api/v1/ai/services", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AIService reads one registered AI service.
func (c *Client) AIService(ctx context.Context, id string) (*AIServiceInfo, error) {
	var out AIServiceInfo
	if err := c.do(ctx, http.MethodGet, "/api/v1/ai/services/"+id, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
