package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// renewed is a gateway's renewal as the test saw it.
type renewed struct {
	oldAuth tls.Certificate // the replaced key and certificate, kept by the test
	oldFP   string
	out     *authority.RenewOutput
}

// renewAt prepares, has the authority issue and installs a gateway's
// renewed certificates, as `sampan gateway renew` does, without
// switching yet.
func (w *world) renewAt(t *testing.T, id string) renewed {
	t.Helper()
	dir := w.manifestGateway(id).DataDir
	gid, _ := ident.ParseGateway(id)
	old, err := tls.LoadX509KeyPair(filepath.Join(dir, "auth.crt"), filepath.Join(dir, "auth.key"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := gateway.PrepareRenewal(dir, gid)
	if err != nil {
		t.Fatal(err)
	}
	in := authority.RenewInput{SignCSRs: map[string]string{}}
	b, err := os.ReadFile(p.AuthCSR)
	if err != nil {
		t.Fatal(err)
	}
	in.AuthCSR = string(b)
	for m, sp := range p.Sign {
		b, err := os.ReadFile(sp[1])
		if err != nil {
			t.Fatal(err)
		}
		in.SignCSRs[m.String()] = string(b)
	}
	out, err := w.adminAPI(t).RenewGateway(t.Context(), gid, in)
	if err != nil {
		t.Fatal(err)
	}
	sign := map[ident.ClientID][]byte{}
	for m, c := range out.Sign {
		mid, _ := ident.ParseMember(m)
		sign[mid] = []byte(c.Certificate)
	}
	if err := gateway.InstallRenewal(dir, gid, []byte(out.Auth.Certificate), sign); err != nil {
		t.Fatal(err)
	}
	return renewed{oldAuth: old, oldFP: pki.Fingerprint(old.Certificate[0]), out: out}
}

// peerHello opens a connection to a gateway's peer side presenting
// cert, and makes one request: it returns the fingerprint of the
// certificate the gateway presented and whether it accepted cert.
func peerHello(t *testing.T, addr string, cert tls.Certificate) (string, bool) {
	t.Helper()
	var served string
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			served = pki.Fingerprint(cs.PeerCertificates[0].Raw)
			return nil
		},
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return served, false
	}
	resp.Body.Close()
	return served, true
}

// TestRenewUnderTraffic: the consumer's (HCMC) and the provider's (MOF)
// gateways renew their authentication and signing certificates in place
// while four loops of calls run between them, and no call is refused.
// A gateway does not switch before its configuration lists its new
// certificate; once switched, peers see the new certificate and the new
// signatures; during the overlap the old certificate is still accepted,
// after completion it no longer is. A record signed with the old signing
// certificate still exports and verifies, as does the whole log.
func TestRenewUnderTraffic(t *testing.T) {
	// Configurations are refreshed by the test alone.
	w := startWorld(t, sandbox.Options{ConfRefresh: 5 * time.Minute})
	const hcmc, mof = "VN/GOV/HCMC/gw1", "VN/GOV/MOF/gw1"
	mofAddr := w.manifestGateway(mof).PeerAddr
	before := "before-renewal"
	if resp, b := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: before}}); resp.StatusCode != 200 {
		t.Fatalf("before: %d %s", resp.StatusCode, b)
	}

	var stop atomic.Bool
	var calls, refused atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, b := w.do(t, call{path: companies + "/0100109106"})
				calls.Add(1)
				if resp.StatusCode != 200 {
					refused.Add(1)
					t.Errorf("during the renewal: %d %s", resp.StatusCode, b)
				}
			}
		}()
	}
	// traffic waits for n more calls.
	traffic := func(n int64) {
		t.Helper()
		for start, deadline := calls.Load(), time.Now().Add(30*time.Second); calls.Load() < start+n; {
			if time.Now().After(deadline) {
				t.Fatalf("no traffic: %d calls", calls.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	traffic(20)

	rh, rm := w.renewAt(t, hcmc), w.renewAt(t, mof)
	traffic(20)
	// The gateways still hold the configuration from before the
	// renewal: their peers would refuse the new certificates.
	if _, err := w.gw[hcmc].SwitchKeys(); !errors.Is(err, gateway.ErrNotListed) {
		t.Fatalf("switch before the configuration lists the new certificate: %v, want ErrNotListed", err)
	}
	if fp := w.gw[hcmc].AuthFingerprint(); fp != rh.oldFP {
		t.Fatalf("a refused switch changed the certificate in use: %s", fp)
	}
	w.refresh(t)
	traffic(20)

	// MOF switches in-process: HCMC's new connections meet MOF's new
	// certificate while both are listed, and MOF still accepts HCMC's
	// old one.
	if ks, err := w.gw[mof].SwitchKeys(); err != nil || ks.AuthFP != rm.out.Auth.SHA256 {
		t.Fatalf("switch MOF: %+v, %v", ks, err)
	}
	if _, err := w.gw[mof].SwitchKeys(); !errors.Is(err, gateway.ErrNoRenewal) {
		t.Errorf("a second switch: %v, want ErrNoRenewal", err)
	}
	traffic(20)
	if served, ok := peerHello(t, mofAddr, rh.oldAuth); served != rm.out.Auth.SHA256 || !ok {
		t.Errorf("during the overlap MOF presents %.16s… (want its new %.16s…) and accepts HCMC's old certificate: %v", served, rm.out.Auth.SHA256, ok)
	}

	// HCMC switches through its operations listener; at once its old
	// certificate is revoked while still listed: its calls go on, as it
	// no longer uses it.
	resp, err := http.Post(w.manifestGateway(hcmc).OpsURL+"/keys/switch", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ks gateway.KeySwitch
	json.NewDecoder(resp.Body).Decode(&ks)
	resp.Body.Close()
	if resp.StatusCode != 200 || ks.AuthFP != rh.out.Auth.SHA256 || ks.PreviousAuthFP != rh.oldFP || len(ks.Sign) != 1 {
		t.Fatalf("POST /keys/switch: %d %+v", resp.StatusCode, ks)
	}
	api := w.adminAPI(t)
	oldLeaf, err := x509.ParseCertificate(rh.oldAuth.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Revoke(t.Context(), fmt.Sprintf("%x", oldLeaf.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	if err := w.gw[mof].RefreshConf(t.Context()); err != nil {
		t.Fatal(err)
	}
	traffic(50)
	w.refresh(t)
	for _, id := range []string{hcmc, mof} {
		gid, _ := ident.ParseGateway(id)
		if _, err := api.CompleteRenewal(t.Context(), gid, authority.CompleteInput{RevokeOld: true}); err != nil {
			t.Fatal(err)
		}
	}
	w.refresh(t)
	after := "after-renewal"
	if resp, b := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: after}}); resp.StatusCode != 200 {
		t.Errorf("after: %d %s", resp.StatusCode, b)
	}
	traffic(50)
	stop.Store(true)
	wg.Wait()
	if calls.Load() == 0 || refused.Load() != 0 {
		t.Errorf("%d calls during the renewal, %d refused", calls.Load(), refused.Load())
	}
	if _, ok := peerHello(t, mofAddr, rh.oldAuth); ok {
		t.Error("after completion MOF still accepts HCMC's old authentication certificate")
	}
	for id, r := range map[string]renewed{hcmc: rh, mof: rm} {
		if fp := w.gw[id].AuthFingerprint(); fp != r.out.Auth.SHA256 {
			t.Errorf("%s uses %s, want its renewed certificate %s", id, fp, r.out.Auth.SHA256)
		}
		if !w.gw[id].Ready() {
			t.Errorf("%s is not ready after its renewal", id)
		}
	}

	// Evidence: MOF's records of the exchanges before and after, signed
	// with the old and the new signing certificates, export and verify;
	// so does the whole log.
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(w.manifestGateway(mof).DataDir, "log")
	if _, err := msglog.Verify(t.Context(), dir, "", func(*msglog.Record) {}); err != nil {
		t.Fatalf("verify MOF's log: %v", err)
	}
	signer := map[string]string{}
	for _, id := range []string{before, after} {
		out := t.TempDir()
		if err := msglog.Export(t.Context(), dir, "", msglog.Selection{XRoadID: id}, out); err != nil {
			t.Fatalf("export %s: %v", id, err)
		}
		rep, err := msglog.VerifyBundle(out)
		if err != nil || !rep.Signatures {
			t.Fatalf("bundle of %s: %+v, %v", id, rep, err)
		}
		signer[id] = rep.Record.ResponseSignerCert
	}
	if signer[before] == signer[after] || signer[after] != rm.out.Sign["VN/GOV/MOF"].SHA256 {
		t.Errorf("response signers: before %s, after %s; want the old one, then %s", signer[before], signer[after], rm.out.Sign["VN/GOV/MOF"].SHA256)
	}
	if old, _ := filepath.Glob(filepath.Join(w.manifestGateway(mof).DataDir, "sign", "old", "*.crt")); len(old) != 1 {
		t.Errorf("replaced signing certificates kept: %v", old)
	}
}
