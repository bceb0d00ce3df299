package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/bench"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/procs"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/ops"
	"github.com/sampan-exchange/sampan/report"
	"github.com/sampan-exchange/sampan/sandbox"
)

// CLI is the command line.
type CLI struct {
	Globals
	Sandbox   SandboxCmd   `cmd:"" help:"Run the sandbox world on loopback: an authority, gateways and demo services."`
	Authority AuthorityCmd `cmd:"" help:"Run an instance's authority, or call its management API."`
	Gateway   GatewayCmd   `cmd:"" help:"Run or set up a member's gateway."`
	Bench     BenchCmd     `cmd:"" help:"Measure the exchange against a bare backend and a plain mutual-TLS proxy chain, in one run."`
	Log       LogCmd       `cmd:"" help:"Check a gateway's message log."`
	Report    ReportCmd    `cmd:"" help:"Reports for regulators, built from a gateway's message log."`
	Ops       OpsCmd       `cmd:"" help:"Read a daemon's operations API: monitoring records."`
	AI        AICmd        `cmd:"" name:"ai" help:"Evaluate AI services through the exchange; check evaluation reports."`
	Version   VersionCmd   `cmd:"" help:"Print the build: version, source commit, Go version."`
	Migrate   MigrateCmd   `cmd:"" help:"Show or roll back a database's schema (docs/upgrading.md)."`
}

// Globals are flags every command takes.
type Globals struct {
	LogLevel  string `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: text or json." default:"text" enum:"text,json"`
}

func (g *Globals) logger() *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(g.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// SandboxCmd runs the sandbox.
type SandboxCmd struct {
	Dir string `help:"Directory for the sandbox's state; reused on the next start." default:"./sampan-sandbox" type:"path"`
}

// Run starts the sandbox and waits for a signal.
func (c *SandboxCmd) Run(g *Globals) error {
	ctx, stop := signalContext()
	defer stop()
	log := g.logger()
	if g.LogLevel == "info" {
		// Per-request lines would drown the printed examples.
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	n := procs.Set(0)
	log.Debug("scheduler", "procs", n, "cpus", procs.CPUs())
	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: c.Dir, Log: log})
	if err != nil {
		return err
	}
	sb.PrintWelcome(os.Stdout)
	err = sb.Wait(ctx)
	fmt.Fprintln(os.Stderr, "stopping the sandbox…")
	return errors.Join(err, sb.Close())
}

// AuthorityCmd groups the authority's subcommands: the daemon, and
// operators' calls to a running authority's management API.
type AuthorityCmd struct {
	Run          AuthorityRunCmd          `cmd:"" default:"withargs" help:"Run an instance's authority."`
	Issue        AuthorityIssueCmd        `cmd:"" help:"Have an authority issue a certificate from a CSR."`
	Revoke       AuthorityRevokeCmd       `cmd:"" help:"Revoke a certificate at an authority."`
	Certificates AuthorityCertificatesCmd `cmd:"" help:"List the certificates an authority has issued, with their status."`
	Audit        AuthorityAuditCmd        `cmd:"" help:"Read an authority's audit log: who did what, when, refusals included."`
	Members      AuthorityMembersCmd      `cmd:"" help:"List the members registered at an authority, or show one (--id)."`
	Subsystems   AuthoritySubsystemsCmd   `cmd:"" help:"List the subsystems registered at an authority, or show one (--id)."`
	Gateways     AuthorityGatewaysCmd     `cmd:"" help:"List the gateways registered at an authority, with their certificates, or show one (--id)."`
	Groups       AuthorityGroupsCmd       `cmd:"" help:"List the global groups of an authority, or show one (--id)."`
	Federation   AuthorityFederationCmd   `cmd:"" help:"List the instances an authority federates with, or show one (--id)."`
	Backup       AuthorityBackupCmd       `cmd:"" help:"Write a signed (optionally encrypted) archive of an authority's data directory, while it runs."`
	Restore      AuthorityRestoreCmd      `cmd:"" help:"Restore an authority's data directory from an archive, never undoing later revocations or suspensions."`
	Rotate       AuthorityRotateCmd       `cmd:"" help:"Rotate the configuration-signing key or the instance CA, with overlap (docs/operating.md)."`
}

// AuthorityRunCmd runs an authority.
type AuthorityRunCmd struct {
	Config string `help:"Configuration file (JSON)." required:"" type:"existingfile"`
	Dir    string `help:"Data directory: CA, keys, registry, anchor." required:"" type:"path"`
}

// Run serves until a signal; SIGHUP reloads the configuration file.
func (c *AuthorityRunCmd) Run(g *Globals) error {
	// Taken before anything else: a reload asked for while the authority
	// starts must not stop it (SIGHUP's default).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signalContext()
	defer stop()
	return c.run(ctx, g.logger(), hup)
}

// run serves until ctx ends, reloading the configuration file on each
// value of hup.
func (c *AuthorityRunCmd) run(ctx context.Context, log *slog.Logger, hup <-chan os.Signal) error {
	cfg, err := authority.LoadConfig(c.Config)
	if err != nil {
		return err
	}
	a, err := authority.NewWithOptions(ctx, cfg, c.Dir, authority.Options{Log: log, LoadConfig: func() (*authority.Config, error) { return authority.LoadConfig(c.Config) }})
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(os.Stderr, "anchor for gateways of %s: %s (with the authority's TLS CA, %s)\n", cfg.Instance, a.AnchorPath(), a.TLSCAPath())
	ctx, cancel := context.WithCancel(ctx)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Reload(ctx) // logs and counts its outcome
			}
		}
	}()
	err = a.Run(ctx)
	cancel()
	<-reloads
	return err
}

// GatewayCmd groups the gateway's subcommands.
type GatewayCmd struct {
	Run   GatewayRunCmd   `cmd:"" default:"withargs" help:"Run the gateway."`
	Init  GatewayInitCmd  `cmd:"" help:"Create the gateway's keys and certificate requests."`
	Renew GatewayRenewCmd `cmd:"" help:"Renew the gateway's certificates in place, with new keys, without a restart."`

	Backup  GatewayBackupCmd  `cmd:"" help:"Write a signed (optionally encrypted) archive of a gateway's data directory, message log included, while it runs."`
	Restore GatewayRestoreCmd `cmd:"" help:"Restore a gateway's data directory from an archive, never losing message-log evidence."`
}

// GatewayRunCmd runs a gateway.
type GatewayRunCmd struct {
	Config string `help:"Configuration file (JSON)." required:"" type:"existingfile"`
	Dir    string `help:"Data directory: keys, certificates, state." required:"" type:"path"`
}

// Run serves until a signal; SIGHUP reloads the configuration file.
func (c *GatewayRunCmd) Run(g *Globals) error {
	// Taken before anything else: a reload asked for while the gateway
	// starts must not stop it (SIGHUP's default).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := loadGatewayConfig(c.Config)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	log := g.logger()
	n := procs.Set(0)
	log.Info("scheduler", "procs", n, "cpus", procs.CPUs())
	gw, err := gateway.New(ctx, cfg, c.Dir, gateway.Options{Log: log, LoadConfig: func() (*gateway.Config, error) { return loadGatewayConfig(c.Config) }})
	if err != nil {
		return err
	}
	defer gw.Close()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := gw.Reload(); err != nil {
					log.Error("configuration file not reloaded", "err", err)
				}
			}
		}
	}()
	return gw.Run(ctx)
}

// loadGatewayConfig loads a gateway's configuration file, with the
// record index's DSN from SAMPAN_LOG_INDEX_DSN when set: a database
// password is better kept out of the file.
func loadGatewayConfig(path string) (*gateway.Config, error) {
	cfg, err := gateway.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if dsn := os.Getenv("SAMPAN_LOG_INDEX_DSN"); dsn != "" {
		cfg.Log.IndexDSN = dsn
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("SAMPAN_LOG_INDEX_DSN: %w", err)
		}
	}
	return cfg, nil
}

// GatewayInitCmd creates keys and CSRs.
type GatewayInitCmd struct {
	ID      string   `help:"Gateway identifier, INSTANCE/CLASS/CODE/NAME." required:""`
	Dir     string   `help:"Data directory." required:"" type:"path"`
	Members []string `help:"Members whose messages this gateway signs (default: its owner)." sep:","`
}

// Run writes the keys (0600) and CSRs and says what to do next.
func (c *GatewayInitCmd) Run(g *Globals) error {
	id, err := ident.ParseGateway(c.ID)
	if err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	var members []ident.ClientID
	for _, m := range c.Members {
		mid, err := ident.ParseMember(m)
		if err != nil {
			return fmt.Errorf("--members: %w", err)
		}
		members = append(members, mid)
	}
	p, err := gateway.Init(c.Dir, id, members...)
	if err != nil {
		return err
	}
	fmt.Printf("authentication key  %s\nauthentication CSR  %s  -> have the authority issue profile \"auth\", save as %s\n", p.AuthKey, p.AuthCSR, p.AuthCert)
	for m, s := range p.Sign {
		fmt.Printf("signing key of %s  %s\nsigning CSR         %s  -> profile \"sign\", save as %s\n", m, s[0], s[1], s[2])
	}
	fmt.Println(strings.TrimSpace(`
Then have the authority's operator register the gateway (address and
clients), issue the certificates from these CSRs, and bind the
authentication certificate's SHA-256 to the registration
(docs/operating.md, "Keys and certificates").`))
	return nil
}

// BenchCmd runs the benchmark.
type BenchCmd struct {
	Quick        bool          `help:"Short run (under a minute)."`
	Duration     time.Duration `help:"Measurement time per target (default 20s, 5s with --quick)."`
	Rounds       int           `help:"Split the floor's and Sampan's measurement time, closed loop and open loop, into this many alternated rounds (default 4, 2 with --quick, 1 with --cpu-profile); the backend is measured once, for the whole time."`
	Connections  int           `help:"Closed-loop connections." default:"64"`
	BodySize     int           `help:"Request body in bytes, echoed back by the backend." default:"1024"`
	StreamBytes  int64         `help:"Size of the body streamed once each way through Sampan to measure memory (default 100 MiB; -1 skips it)."`
	OpenRate     float64       `help:"Rate of the open-loop latency measurement in requests/s (default: half of Sampan's measured peak)."`
	Out          string        `help:"Write the report as JSON to this file." type:"path"`
	CPUProfile   string        `help:"Write a CPU profile of the Sampan measurement to this file." type:"path"`
	Procs        int           `help:"Ps (GOMAXPROCS) for Sampan's measurements (default: what the gateway runs with, the CPUs plus two, or GOMAXPROCS when set)."`
	Dir          string        `help:"Make the gateways' state and message logs in a new directory under this one, removed afterwards (default: the system's temporary directory). Every exchange waits for log syncs there: use the disk the gateways will use." type:"existingdir"`
	Nginx        string        `help:"nginx binary for a second floor: nginx's own reverse proxies, chained over mutual TLS 1.3 as the floor's are (default: nginx on the PATH or in /usr/sbin, when installed; off: none)."`
	PeerProtocol string        `help:"What the gateways speak to each other, and the floor's proxies to each other: http/1.1 (the gateway's default) or h2." default:"http/1.1" enum:"http/1.1,h2"`
	Monitoring   string        `help:"The gateways' exchange metrics and monitoring records: on (the gateway's default) or off, to measure what they cost." default:"on" enum:"on,off"`
	Protocol     string        `help:"The client protocol: rest (r1) or soap, which measures r1 and the same exchange as a SOAP envelope of --body-size bytes in alternation and reports SOAP's throughput over r1's." default:"rest" enum:"rest,soap"`
}

// Run measures and prints the table.
func (c *BenchCmd) Run(g *Globals) error {
	ctx, stop := signalContext()
	defer stop()
	rep, err := bench.Run(ctx, bench.Options{Quick: c.Quick, Duration: c.Duration, Rounds: c.Rounds, StreamBytes: c.StreamBytes, Connections: c.Connections, BodySize: c.BodySize, CPUProfile: c.CPUProfile, OpenRate: c.OpenRate, Procs: c.Procs, PeerProtocol: c.PeerProtocol, Protocol: c.Protocol, Dir: c.Dir, Nginx: c.Nginx, Monitoring: c.Monitoring}, os.Stderr)
	if err != nil {
		return err
	}
	rep.Print(os.Stdout)
	if c.Out != "" {
		return rep.WriteJSON(c.Out)
	}
	return nil
}

// LogCmd groups the message-log commands.
type LogCmd struct {
	Verify       LogVerifyCmd       `cmd:"" help:"Check a gateway's whole message log offline; exit 0 when all holds."`
	Export       LogExportCmd       `cmd:"" help:"Write the evidence of one exchange as a bundle of standard files."`
	VerifyBundle LogVerifyBundleCmd `cmd:"" name:"verify-bundle" help:"Check an evidence bundle; exit 0 when all holds."`
	Body         LogBodyCmd         `cmd:"" help:"Decrypt a stored body of one exchange (where the gateway keeps bodies) to standard output."`
}

// indexFlag names the record index when it is in PostgreSQL.
type indexFlag struct {
	IndexDSN string `name:"index-dsn" env:"SAMPAN_LOG_INDEX_DSN" help:"The record index's PostgreSQL URL, when the gateway keeps it there (default: index.db in the log directory)."`
}

// logDirOf accepts a gateway's data directory or its log directory.
func logDirOf(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, msglog.VerifierKeyFile)); err != nil {
		return filepath.Join(dir, "log")
	}
	return dir
}

// LogExportCmd exports one exchange's evidence.
type LogExportCmd struct {
	Dir string `help:"The gateway's data directory (or its log directory)." required:"" type:"existingdir"`
	ID  string `help:"The exchange's X-Road-Id." required:""`
	Out string `help:"Directory to write the bundle to (created)." required:"" type:"path"`
	// X-Road-Ids are the clients' choice and may repeat: these choose
	// among the exchanges that share one.
	RequestHash string `name:"request-hash" help:"When several exchanges share the X-Road-Id: the request hash (X-Road-Request-Hash) of the one to export."`
	At          string `help:"When several exchanges share the X-Road-Id: the time (RFC 3339; to the second without a fraction) the gateway received the one to export."`
	Side        string `help:"When the gateway logged both sides of the exchange (it serves both client and service): consumer or provider." enum:",consumer,provider" default:""`
	indexFlag
}

// Run writes the bundle.
func (c *LogExportCmd) Run(g *Globals) error {
	if entries, err := os.ReadDir(c.Out); err == nil && len(entries) > 0 {
		return fmt.Errorf("--out: %s is not empty", c.Out)
	}
	sel := msglog.Selection{XRoadID: c.ID, RequestHash: c.RequestHash, Side: c.Side}
	if c.At != "" {
		at, err := time.Parse(time.RFC3339Nano, c.At)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		sel.At = at
	}
	if err := msglog.Export(context.Background(), logDirOf(c.Dir), c.IndexDSN, sel, c.Out); err != nil {
		return err
	}
	fmt.Printf("evidence of %s written to %s (see its README.md)\n", c.ID, c.Out)
	return nil
}

// LogVerifyBundleCmd checks a bundle.
type LogVerifyBundleCmd struct {
	Bundle string `arg:"" help:"The bundle directory." type:"existingdir"`
}

// Run verifies and reports.
func (c *LogVerifyBundleCmd) Run(g *Globals) error {
	rep, err := msglog.VerifyBundle(c.Bundle)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", c.Bundle, err)
	}
	fmt.Printf("exchange %s (%s → %s): record is leaf %d of a signed tree of %d; both message signatures verify", rep.Record.XRoadID, rep.Record.Client, rep.Record.Service, rep.LeafIndex, rep.TreeSize)
	if rep.Timestamped {
		fmt.Printf("; time-stamped by %s", rep.StampedAt)
	} else {
		fmt.Printf("; not yet time-stamped")
	}
	fmt.Println()
	return nil
}

// LogVerifyCmd checks a log offline.
type LogVerifyCmd struct {
	Dir string `help:"The gateway's data directory (or its log directory)." required:"" type:"existingdir"`
	indexFlag
}

// Run verifies and reports the first fault.
func (c *LogVerifyCmd) Run(g *Globals) error {
	dir := logDirOf(c.Dir)
	rep, err := msglog.Verify(context.Background(), dir, c.IndexDSN, nil)
	if err != nil {
		return fmt.Errorf("message log %s: %w", dir, err)
	}
	fmt.Printf("message log %s holds: %d records, checkpoint of size %d signed by %s, tree consistent with its entries", dir, rep.Records, rep.Size, rep.Origin)
	if rep.Purged > 0 {
		fmt.Printf("; %d records purged under retention by %d logged purges", rep.Purged, rep.Purges)
	}
	if rep.Pending > 0 {
		fmt.Printf("; %d newer records not yet in the signed tree", rep.Pending)
	}
	if rep.Unindexed > 0 {
		fmt.Printf("; %d acknowledged records still only in write-ahead segments (indexed within 50 ms while the gateway runs, or at its next start)", rep.Unindexed)
	}
	fmt.Printf("; %d time-stamp tokens verify\n", rep.Timestamps)
	if rep.Damaged > 0 {
		return fmt.Errorf("message log %s: %d write-ahead segment(s) damaged: acknowledged records may be lost; inspect %s (*.damaged) and see docs/design/message-log.md", dir, rep.Damaged, filepath.Join(dir, msglog.WALDir))
	}
	return nil
}

// LogBodyCmd decrypts one stored body.
type LogBodyCmd struct {
	Dir  string `help:"The gateway's data directory (or its log directory)." required:"" type:"existingdir"`
	ID   string `help:"The exchange's X-Road-Id." required:""`
	Part string `help:"request or response." enum:"request,response" default:"response"`
	indexFlag
}

// Run writes the body to standard output after checking it against the
// digest the record holds.
func (c *LogBodyCmd) Run(g *Globals) error {
	return msglog.WriteBody(context.Background(), logDirOf(c.Dir), c.IndexDSN, c.ID, c.Part, os.Stdout)
}

// ReportCmd groups the reports.
type ReportCmd struct {
	Transfers ReportTransfersCmd `cmd:"" help:"Data transfers per flow: parties, countries, data categories, purposes, legal basis, agreement, volumes, period."`
}

// ReportTransfersCmd writes the transfer report.
type ReportTransfersCmd struct {
	Dir      string    `help:"The gateway's data directory (or its log directory)." required:"" type:"existingdir"`
	From     time.Time `help:"Start of the period (RFC 3339, inclusive)." required:""`
	To       time.Time `help:"End of the period (RFC 3339, exclusive)." required:""`
	Format   string    `help:"csv or json." enum:"csv,json" default:"csv"`
	Domestic bool      `help:"Include flows within the instance (by default only cross-border flows)."`
	indexFlag
}

// Run writes the report to standard output.
func (c *ReportTransfersCmd) Run(g *Globals) error {
	if !c.To.After(c.From) {
		return fmt.Errorf("--to must be after --from")
	}
	o := report.Options{From: c.From, To: c.To, Domestic: c.Domestic, IndexDSN: c.IndexDSN}
	flows, err := report.Transfers(context.Background(), logDirOf(c.Dir), o)
	if err != nil {
		return err
	}
	if c.Format == "json" {
		return report.WriteJSON(os.Stdout, o, flows)
	}
	return report.WriteCSV(os.Stdout, flows)
}

// VersionCmd prints the build.
type VersionCmd struct {
	JSON bool `help:"Print it as JSON."`
}

// Run prints the build information.
func (c *VersionCmd) Run(g *Globals) error { return printVersion(os.Stdout, c.JSON) }

func printVersion(w io.Writer, asJSON bool) error {
	b := ops.Build()
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(b)
	}
	fmt.Fprintf(w, "sampan %s\n", b.Version)
	if b.Commit != "" {
		fmt.Fprintf(w, "commit %s (%s)\n", b.Commit, b.CommitTime)
	}
	fmt.Fprintf(w, "go %s\n", b.GoVersion)
	return nil
}
