package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/ops"
)

// GatewayRenewCmd renews a gateway's certificates in place: the same
// data directory, the same message log (docs/operating.md, "Renewing a
// gateway's certificates").
type GatewayRenewCmd struct {
	All      GatewayRenewAllCmd      `cmd:"" default:"withargs" help:"Renew in one go: new keys, certificates from the authority, switch the running gateway, complete."`
	Prepare  GatewayRenewPrepareCmd  `cmd:"" help:"Offline step 1: make the next keys and CSRs, and the request to hand to the authority."`
	Request  GatewayRenewRequestCmd  `cmd:"" help:"Offline step 2, at the authority: issue the certificates a renewal request asks for."`
	Install  GatewayRenewInstallCmd  `cmd:"" help:"Offline step 3: install the certificates the authority issued beside the next keys."`
	Switch   GatewayRenewSwitchCmd   `cmd:"" help:"Offline step 4: have the running gateway switch to the renewed keys."`
	Complete GatewayRenewCompleteCmd `cmd:"" help:"Offline step 5, at the authority: the renewed certificate becomes the registered one."`
}

// renewalRequest is the file the prepare step writes: the API's
// renewal input, with the gateway it is for.
type renewalRequest struct {
	Gateway ident.GatewayID `json:"gateway"`
	authority.RenewInput
}

// prepareRequest makes the next keys and CSRs in dir and returns the
// renewal request for them.
func prepareRequest(dir string, id ident.GatewayID) (*renewalRequest, error) {
	p, err := gateway.PrepareRenewal(dir, id)
	if err != nil {
		return nil, err
	}
	req := &renewalRequest{Gateway: id}
	b, err := os.ReadFile(p.AuthCSR)
	if err != nil {
		return nil, err
	}
	req.AuthCSR = string(b)
	for m, sp := range p.Sign {
		b, err := os.ReadFile(sp[1])
		if err != nil {
			return nil, err
		}
		if req.SignCSRs == nil {
			req.SignCSRs = map[string]string{}
		}
		req.SignCSRs[m.String()] = string(b)
	}
	return req, nil
}

// install writes what the authority issued beside the next keys.
func install(dir string, id ident.GatewayID, out *authority.RenewOutput) error {
	if out.Gateway != id.String() {
		return fmt.Errorf("the certificates were issued to %s, not %s", out.Gateway, id)
	}
	var auth []byte
	if out.Auth != nil {
		auth = []byte(out.Auth.Certificate)
	}
	sign := map[ident.ClientID][]byte{}
	for m, c := range out.Sign {
		mid, err := ident.ParseMember(m)
		if err != nil {
			return fmt.Errorf("sign[%q]: %w", m, err)
		}
		sign[mid] = []byte(c.Certificate)
	}
	return gateway.InstallRenewal(dir, id, auth, sign)
}

// gatewayOps calls a running gateway's operations listener.
type gatewayOps struct {
	OpsURL       string `name:"ops-url" help:"The gateway's operations listener, e.g. http://127.0.0.1:9080 (default: from ops_listen in --config)."`
	OpsTokenFile string `name:"ops-token-file" help:"Token of the operations listener (default: ops_token_file in --config)." type:"path"`
}

// resolve fills the operations URL and token file from the gateway's
// configuration (file, as loaded into c).
func (o *gatewayOps) resolve(c *gateway.Config, file string) {
	if o.OpsURL == "" {
		host, port, err := net.SplitHostPort(c.OpsListen)
		if err == nil {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				host = "127.0.0.1"
			}
			o.OpsURL = "http://" + net.JoinHostPort(host, port)
		}
	}
	if o.OpsTokenFile == "" && c.OpsTokenFile != "" {
		o.OpsTokenFile = c.OpsTokenFile
		if !filepath.IsAbs(o.OpsTokenFile) {
			o.OpsTokenFile = filepath.Join(filepath.Dir(file), o.OpsTokenFile)
		}
	}
}

// post calls path on the operations listener and decodes the JSON
// answer into out; it returns the status.
func (o *gatewayOps) post(ctx context.Context, path string, out any) (int, error) {
	if o.OpsURL == "" {
		return 0, errors.New("--ops-url: the gateway's operations listener is unknown")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.OpsURL, "/")+path, nil)
	if err != nil {
		return 0, fmt.Errorf("--ops-url: %w", err)
	}
	if o.OpsTokenFile != "" {
		tok, err := ops.ReadTokenFile(o.OpsTokenFile)
		if err != nil {
			return 0, fmt.Errorf("--ops-token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: %w", path, err)
	}
	if out != nil {
		json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

// switchKeys asks the running gateway to switch to the renewed keys,
// refreshing its configuration and asking again while that does not
// list the renewed certificate yet, until ctx ends.
func (o *gatewayOps) switchKeys(ctx context.Context, stdout io.Writer) (*gateway.KeySwitch, error) {
	for {
		var res struct {
			gateway.KeySwitch
			Error     string `json:"error"`
			NotListed bool   `json:"not_listed"`
		}
		status, err := o.post(ctx, "/keys/switch", &res)
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusOK:
			return &res.KeySwitch, nil
		case !res.NotListed:
			return nil, fmt.Errorf("switch keys: %d %s", status, res.Error)
		}
		fmt.Fprintln(stdout, "the gateway's configuration does not list the renewed certificate yet; refreshing it")
		if _, err := o.post(ctx, "/conf/refresh", nil); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("switch keys: %s: %w", res.Error, ctx.Err())
		case <-time.After(5 * time.Second):
		}
	}
}

// GatewayRenewAllCmd renews in one go against a reachable authority.
type GatewayRenewAllCmd struct {
	authorityAPI
	gatewayOps
	Dir       string        `help:"The gateway's data directory." required:"" type:"existingdir"`
	Config    string        `help:"The gateway's configuration file." required:"" type:"existingfile"`
	Settle    time.Duration `help:"How long after the authority publishes the renewed certificate the gateway starts using it: long enough for every peer to fetch that configuration (at least their conf_refresh)." default:"2m"`
	RevokeOld bool          `help:"Revoke the replaced authentication certificate once the renewal completes." default:"true" negatable:""`
	Timeout   time.Duration `help:"Give up switching after this long." default:"10m"`
}

// Run renews, switches and completes.
func (c *GatewayRenewAllCmd) Run(g *Globals) error {
	ctx, stop := signalContext()
	defer stop()
	return c.run(ctx, os.Stdout)
}

func (c *GatewayRenewAllCmd) run(ctx context.Context, stdout io.Writer) error {
	gc, err := loadGatewayConfig(c.Config)
	if err != nil {
		return err
	}
	c.resolve(gc, c.Config)
	api, err := c.client()
	if err != nil {
		return err
	}
	req, err := prepareRequest(c.Dir, gc.ID)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	out, err := api.RenewGateway(actx, gc.ID, req.RenewInput)
	cancel()
	if err != nil {
		return err
	}
	published := time.Now()
	if err := install(c.Dir, gc.ID, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "renewed authentication certificate %s (sha256 %s), published beside the current one\n", out.Auth.Serial, out.Auth.SHA256)
	for m, s := range out.Sign {
		fmt.Fprintf(stdout, "renewed signing certificate of %s: %s\n", m, s.Serial)
	}
	c.post(ctx, "/conf/refresh", nil) // the switch retries until the gateway holds it
	if wait := time.Until(published.Add(c.Settle)); wait > 0 {
		fmt.Fprintf(stdout, "waiting %s for the peers to fetch the configuration listing it (--settle)\n", wait.Round(time.Second))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	sctx, cancel := context.WithTimeout(ctx, c.Timeout)
	ks, err := c.switchKeys(sctx, stdout)
	cancel()
	if err != nil {
		return fmt.Errorf("%w; the renewed certificates are installed: run 'sampan gateway renew switch' and then 'complete'", err)
	}
	fmt.Fprintf(stdout, "the gateway now uses %s\n", ks.AuthFP)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	done, err := api.CompleteRenewal(cctx, gc.ID, authority.CompleteInput{RevokeOld: c.RevokeOld})
	cancel()
	if err != nil {
		return fmt.Errorf("complete the renewal: %w", err)
	}
	fmt.Fprintf(stdout, "renewal complete: %s is registered with %s", gc.ID, done.AuthFP)
	if done.Revoked != "" {
		fmt.Fprintf(stdout, "; certificate %s revoked", done.Revoked)
	}
	fmt.Fprintln(stdout)
	return nil
}

// GatewayRenewPrepareCmd makes the next keys and the renewal request.
type GatewayRenewPrepareCmd struct {
	ID  string `help:"The gateway's identifier." required:""`
	Dir string `help:"The gateway's data directory." required:"" type:"existingdir"`
	Out string `help:"Where to write the renewal request (JSON)." default:"renewal-request.json" type:"path"`
}

// Run writes the request.
func (c *GatewayRenewPrepareCmd) Run(g *Globals) error {
	id, err := ident.ParseGateway(c.ID)
	if err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	req, err := prepareRequest(c.Dir, id)
	if err != nil {
		return err
	}
	if err := cfg.Write(c.Out, req, 0o644); err != nil {
		return err
	}
	fmt.Printf("renewal request of %s written to %s: have the authority's operator run 'sampan gateway renew request' with it\n", id, c.Out)
	return nil
}

// GatewayRenewRequestCmd issues what a renewal request asks for.
type GatewayRenewRequestCmd struct {
	authorityAPI
	Request string `help:"The renewal request the gateway's operator wrote." default:"renewal-request.json" type:"existingfile"`
	Out     string `help:"Where to write the issued certificates (JSON), for the gateway's operator." default:"renewal-issued.json" type:"path"`
}

// Run calls the authority.
func (c *GatewayRenewRequestCmd) Run(g *Globals) error {
	b, err := os.ReadFile(c.Request)
	if err != nil {
		return fmt.Errorf("--request: %w", err)
	}
	var req renewalRequest
	if err := cfg.Decode(b, &req); err != nil {
		return fmt.Errorf("--request: %w", err)
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext()
	defer cancel()
	out, err := api.RenewGateway(ctx, req.Gateway, req.RenewInput)
	if err != nil {
		return err
	}
	if err := cfg.Write(c.Out, out, 0o644); err != nil {
		return err
	}
	fmt.Printf("certificates of %s written to %s; the next one is published beside the current one\n", req.Gateway, c.Out)
	return nil
}

// GatewayRenewInstallCmd installs issued certificates.
type GatewayRenewInstallCmd struct {
	ID     string `help:"The gateway's identifier." required:""`
	Dir    string `help:"The gateway's data directory." required:"" type:"existingdir"`
	Issued string `help:"The certificates the authority issued." default:"renewal-issued.json" type:"existingfile"`
}

// Run checks and installs.
func (c *GatewayRenewInstallCmd) Run(g *Globals) error {
	id, err := ident.ParseGateway(c.ID)
	if err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	b, err := os.ReadFile(c.Issued)
	if err != nil {
		return fmt.Errorf("--issued: %w", err)
	}
	var out authority.RenewOutput
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&out); err != nil {
		return fmt.Errorf("--issued: %w", err)
	}
	if err := install(c.Dir, id, &out); err != nil {
		return err
	}
	fmt.Println("renewed certificates installed; switch the running gateway with 'sampan gateway renew switch' once its peers hold the configuration listing them")
	return nil
}

// GatewayRenewSwitchCmd has the running gateway switch keys.
type GatewayRenewSwitchCmd struct {
	gatewayOps
	Config  string        `help:"The gateway's configuration file, for its operations listener." type:"existingfile"`
	Timeout time.Duration `help:"Give up after this long." default:"5m"`
}

// Run switches.
func (c *GatewayRenewSwitchCmd) Run(g *Globals) error {
	if c.Config != "" {
		gc, err := loadGatewayConfig(c.Config)
		if err != nil {
			return err
		}
		c.resolve(gc, c.Config)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	ks, err := c.switchKeys(ctx, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Printf("the gateway now uses %s (was %s); complete the renewal at the authority ('sampan gateway renew complete')\n", ks.AuthFP, ks.PreviousAuthFP)
	return nil
}

// GatewayRenewCompleteCmd completes a renewal at the authority.
type GatewayRenewCompleteCmd struct {
	authorityAPI
	ID        string `help:"The gateway's identifier." required:""`
	RevokeOld bool   `help:"Revoke the replaced authentication certificate." default:"true" negatable:""`
}

// Run completes.
func (c *GatewayRenewCompleteCmd) Run(g *Globals) error {
	id, err := ident.ParseGateway(c.ID)
	if err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext()
	defer cancel()
	done, err := api.CompleteRenewal(ctx, id, authority.CompleteInput{RevokeOld: c.RevokeOld})
	if err != nil {
		return err
	}
	fmt.Printf("renewal complete: %s is registered with %s", id, done.AuthFP)
	if done.Revoked != "" {
		fmt.Printf("; certificate %s revoked", done.Revoked)
	}
	fmt.Println()
	return nil
}
