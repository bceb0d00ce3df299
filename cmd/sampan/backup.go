package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ops"
	"github.com/sampan-exchange/sampan/pki"
)

// AuthorityBackupCmd writes a signed archive of an authority's data
// directory, while it runs or not.
type AuthorityBackupCmd struct {
	Dir            string `help:"The authority's data directory." required:"" type:"path"`
	Out            string `help:"Archive file to write (it must not exist)." required:"" type:"path"`
	Config         string `help:"The authority's configuration file, to archive too." type:"existingfile"`
	PassphraseFile string `help:"File holding a passphrase that encrypts the archive." type:"existingfile"`
}

// Run writes the archive.
func (c *AuthorityBackupCmd) Run(g *Globals) error {
	pass, err := readPassphrase(c.PassphraseFile)
	if err != nil {
		return err
	}
	return writeArchive(c.Out, func(w io.Writer) error {
		m, err := authority.Backup(context.Background(), c.Dir, w, authority.BackupOptions{ConfigFile: c.Config, Passphrase: pass, Version: ops.Build().Version})
		if err == nil {
			fmt.Fprintf(os.Stdout, "backed up authority %s: %d files, configuration serial %s, to %s\n", m.NodeID, len(m.Files), m.Meta["conf_serial"], c.Out)
		}
		return err
	})
}

// AuthorityRestoreCmd restores an authority's data directory from an
// archive, refusing to rewind trust.
type AuthorityRestoreCmd struct {
	Dir            string `help:"The authority's data directory (the authority must be stopped)." required:"" type:"path"`
	In             string `help:"Archive to restore." required:"" type:"existingfile"`
	PassphraseFile string `help:"File holding the archive's passphrase." type:"existingfile"`
	Anchor         string `help:"The instance's anchor (anchor.json), to check the archive and --latest-conf when the directory is lost." type:"existingfile"`
	LatestConf     string `help:"A signed configuration published after the backup (a gateway's cached copy): what it revoked or suspended must not be undone." type:"existingfile"`
	Config         string `help:"Write the archive's authority.json here." type:"path"`
	DryRun         bool   `help:"Say what would change; change nothing."`
	Force          bool   `help:"Accept an archive not signed by this authority's key."`
	Reapply        bool   `help:"Re-apply the revocations, suspensions and agreement status changes made after the backup."`
	Discard        bool   `help:"Drop the revocations, suspensions and agreement status changes made after the backup (audited)."`
}

// Run restores, or with --dry-run prints the plan.
func (c *AuthorityRestoreCmd) Run(g *Globals) error {
	pass, err := readPassphrase(c.PassphraseFile)
	if err != nil {
		return err
	}
	o := authority.RestoreOptions{Passphrase: pass, ConfigOut: c.Config, DryRun: c.DryRun, Force: c.Force, Reapply: c.Reapply, Discard: c.Discard, Operator: "restore (sampan authority restore)"}
	if c.Anchor != "" {
		if o.Anchor, err = conf.ReadAnchor(c.Anchor); err != nil {
			return err
		}
	}
	if c.LatestConf != "" {
		if o.LatestConf, err = os.ReadFile(c.LatestConf); err != nil {
			return fmt.Errorf("read latest configuration: %w", err)
		}
	}
	f, err := os.Open(c.In)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	plan, err := authority.Restore(context.Background(), c.Dir, f, o)
	if plan != nil {
		printRestorePlan(os.Stdout, plan, c.DryRun)
	}
	return err
}

func printRestorePlan(w io.Writer, p *authority.RestorePlan, dry bool) {
	if p.Manifest == nil {
		return
	}
	m := p.Manifest
	fmt.Fprintf(w, "archive: %s %s, made %s by sampan %s, signed by %s key\n", m.NodeKind, m.NodeID, m.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), m.SampanVersion, p.Signed)
	list := func(what string, l []string) {
		if len(l) > 0 {
			fmt.Fprintf(w, "%s: %s\n", what, strings.Join(l, ", "))
		}
	}
	list("files replaced", p.Replaced)
	list("files added", p.Added)
	list("files removed", p.Removed)
	if p.After != nil {
		fmt.Fprintln(w, "registry (current → restored):")
		for _, k := range []string{"members", "subsystems", "gateways", "global_groups", "certificates", "revoked", "suspensions", "policy_items", "federation", "audit_log"} {
			before := "-"
			if p.Before != nil {
				before = fmt.Sprint(p.Before[k])
			}
			fmt.Fprintf(w, "  %-14s %s → %d\n", k, before, p.After[k])
		}
	}
	fmt.Fprintf(w, "configuration serials continue above %d\n", p.SerialFloor)
	if len(p.Undone) > 0 {
		fmt.Fprintf(w, "trust-reducing changes made after the backup (%s):\n", p.Action)
		for _, c := range p.Undone {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	switch {
	case dry && p.Action == "refused":
		fmt.Fprintln(w, "dry run: the restore would refuse unless --reapply or --discard; nothing changed")
	case dry:
		fmt.Fprintln(w, "dry run: nothing changed")
	case p.Previous != "":
		fmt.Fprintf(w, "restored; the previous directory is kept at %s\n", p.Previous)
	case p.Action != "refused":
		fmt.Fprintln(w, "restored")
	}
}

// readPassphrase reads a passphrase file (nil when path is empty); the
// trailing newline is not part of it.
func readPassphrase(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, errors.New("read passphrase: the file is empty")
	}
	return b, nil
}

// writeArchive writes an archive to path through a temporary file, so
// that a failed backup leaves no partial archive.
func writeArchive(path string, write func(io.Writer) error) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: choose a new file for the archive", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".sampan-archive-")
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// GatewayBackupCmd writes a signed archive of a gateway's data
// directory, while it runs or not.
type GatewayBackupCmd struct {
	Dir            string `help:"The gateway's data directory." required:"" type:"path"`
	Out            string `help:"Archive file to write (it must not exist)." required:"" type:"path"`
	Config         string `help:"The gateway's configuration file, to archive too." type:"existingfile"`
	PassphraseFile string `help:"File holding a passphrase that encrypts the archive." type:"existingfile"`
}

// Run writes the archive.
func (c *GatewayBackupCmd) Run(g *Globals) error {
	pass, err := readPassphrase(c.PassphraseFile)
	if err != nil {
		return err
	}
	return writeArchive(c.Out, func(w io.Writer) error {
		m, err := gateway.Backup(context.Background(), c.Dir, w, gateway.BackupOptions{ConfigFile: c.Config, Passphrase: pass, Version: ops.Build().Version})
		if err == nil {
			fmt.Fprintf(os.Stdout, "backed up gateway %s: %d files, message log of %s records, to %s\n", m.NodeID, len(m.Files), m.Meta["log_size"], c.Out)
		}
		return err
	})
}

// GatewayRestoreCmd restores a gateway's data directory from an archive,
// refusing to lose message-log evidence.
type GatewayRestoreCmd struct {
	Dir            string `help:"The gateway's data directory (the gateway must be stopped)." required:"" type:"path"`
	In             string `help:"Archive to restore." required:"" type:"existingfile"`
	PassphraseFile string `help:"File holding the archive's passphrase." type:"existingfile"`
	AuthCert       string `help:"The gateway's authentication certificate, to check the archive when the directory is lost." type:"existingfile"`
	Config         string `help:"Write the archive's gateway.json here." type:"path"`
	DryRun         bool   `help:"Say what would change; change nothing."`
	Force          bool   `help:"Accept an archive not signed by this gateway's key, or a message log that does not hold all of the one in place."`
}

// Run restores, or with --dry-run prints the plan.
func (c *GatewayRestoreCmd) Run(g *Globals) error {
	pass, err := readPassphrase(c.PassphraseFile)
	if err != nil {
		return err
	}
	o := gateway.RestoreOptions{Passphrase: pass, ConfigOut: c.Config, DryRun: c.DryRun, Force: c.Force}
	if c.AuthCert != "" {
		if o.AuthCert, err = pki.ReadCert(c.AuthCert); err != nil {
			return err
		}
	}
	f, err := os.Open(c.In)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	p, err := gateway.Restore(context.Background(), c.Dir, f, o)
	if p != nil && p.Manifest != nil {
		m := p.Manifest
		fmt.Fprintf(os.Stdout, "archive: gateway %s, made %s by sampan %s, signed by %s key\n", m.NodeID, m.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), m.SampanVersion, p.Signed)
		for _, l := range []struct {
			what string
			l    []string
		}{{"files replaced", p.Replaced}, {"files added", p.Added}, {"files removed", p.Removed}} {
			if len(l.l) > 0 {
				fmt.Fprintf(os.Stdout, "%s: %s\n", l.what, strings.Join(l.l, ", "))
			}
		}
		fmt.Fprintf(os.Stdout, "message log: %d records in place, %d in the archive\n", p.LogInPlace, p.LogRestored)
		if p.LogProblem != "" {
			fmt.Fprintf(os.Stdout, "message log: %s\n", p.LogProblem)
		}
		switch {
		case c.DryRun:
			fmt.Fprintln(os.Stdout, "dry run: nothing changed")
		case err == nil && p.Previous != "":
			fmt.Fprintf(os.Stdout, "restored; the previous directory is kept at %s\n", p.Previous)
		case err == nil:
			fmt.Fprintln(os.Stdout, "restored")
		}
	}
	return err
}
