package gateway

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/archive"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

// Backups and restores of a gateway's data directory
// (docs/design/backup.md): keys, certificates, the state and monitoring
// databases (VACUUM INTO copies) and a consistent snapshot of the message
// log, signed with the gateway's authentication key. A restore never
// loses acknowledged evidence: a log that does not extend the one in
// place is refused unless forced.

// archiveGatewayConfig is where an archive holds gateway.json.
const archiveGatewayConfig = "config/gateway.json"

// BackupOptions says what to add to a gateway's backup.
type BackupOptions = archive.BackupOptions

// Backup writes a signed archive of the gateway data directory dir to w,
// while the gateway runs or not. The message log is read first (see
// msglog.Snapshot), so the archive holds every record acknowledged
// before the backup began.
func Backup(ctx context.Context, dir string, w io.Writer, o BackupOptions) (*archive.Manifest, error) {
	dir = filepath.Clean(dir)
	key, err := pki.ReadKey(filepath.Join(dir, authKeyFile))
	if err != nil {
		return nil, fmt.Errorf("back up gateway: authentication key: %w", err)
	}
	id := ""
	if c, err := pki.ReadCert(filepath.Join(dir, authCertFile)); err == nil {
		id, _ = pki.GatewayOf(c)
	}
	stage, err := os.MkdirTemp(dir, archive.StagePrefix)
	if err != nil {
		return nil, fmt.Errorf("back up gateway: %w", err)
	}
	defer os.RemoveAll(stage)
	meta := map[string]string{}
	var srcs []archive.Source
	if _, err := os.Stat(filepath.Join(dir, logDir)); err == nil {
		if err := msglog.Snapshot(ctx, filepath.Join(dir, logDir), filepath.Join(stage, logDir)); err != nil {
			return nil, fmt.Errorf("back up gateway: %w", err)
		}
		if h, err := msglog.ReadHead(ctx, filepath.Join(stage, logDir)); err == nil {
			meta["log_size"], meta["log_root"] = strconv.FormatUint(h.Size, 10), hex.EncodeToString(h.Root)
		}
		logSrcs, err := archive.DirSources(filepath.Join(stage, logDir), nil)
		if err != nil {
			return nil, fmt.Errorf("back up gateway: %w", err)
		}
		for _, s := range logSrcs {
			srcs = append(srcs, archive.Source{Path: logDir + "/" + s.Path, Disk: s.Disk})
		}
	}
	for _, db := range []string{stateFile, opmonFile} {
		if _, err := os.Stat(filepath.Join(dir, db)); err != nil {
			continue
		}
		if err := store.VacuumInto(ctx, filepath.Join(dir, db), filepath.Join(stage, db)); err != nil {
			return nil, fmt.Errorf("back up gateway: %w", err)
		}
		srcs = append(srcs, archive.Source{Path: db, Disk: filepath.Join(stage, db)})
	}
	rest, err := archive.DirSources(dir, skipInBackup)
	if err != nil {
		return nil, fmt.Errorf("back up gateway: %w", err)
	}
	srcs = append(rest, srcs...)
	if o.ConfigFile != "" {
		srcs = append(srcs, archive.Source{Path: archiveGatewayConfig, Disk: o.ConfigFile})
	}
	m, err := archive.Write(w, srcs, archive.WriteOptions{NodeKind: "gateway", NodeID: id, SampanVersion: o.Version, Key: key, Passphrase: o.Passphrase, Meta: meta})
	if err != nil {
		return nil, fmt.Errorf("back up gateway: %w", err)
	}
	return m, nil
}

// skipInBackup names what Backup copies apart (the log, the databases)
// or never (their journals).
func skipInBackup(rel string) bool {
	top, _, _ := strings.Cut(rel, "/")
	return top == logDir || strings.HasPrefix(top, stateFile) || strings.HasPrefix(top, opmonFile)
}

// RestoreOptions says how to restore a gateway.
type RestoreOptions struct {
	// Passphrase opens an encrypted archive.
	Passphrase []byte
	// AuthCert, when set, is the gateway's authentication certificate:
	// its key is trusted beside the one in the data directory (for a
	// directory that was lost).
	AuthCert *x509.Certificate
	// ConfigOut, when set, receives the archive's gateway.json.
	ConfigOut string
	// DryRun reports what would change and changes nothing.
	DryRun bool
	// Force accepts an archive not signed by the gateway's key, and a
	// log that does not extend the one in place.
	Force bool
	// Now, when set, replaces time.Now.
	Now func() time.Time
}

// RestorePlan says what a gateway restore changes (or, dry, would).
type RestorePlan struct {
	Manifest *archive.Manifest `json:"manifest"`
	Signed   string            `json:"signed"` // "node" or "untrusted" (forced)
	Replaced []string          `json:"replaced"`
	Added    []string          `json:"added"`
	Removed  []string          `json:"removed"`
	// LogInPlace and LogRestored are the sizes of the two logs' trees.
	LogInPlace  uint64 `json:"log_in_place"`
	LogRestored uint64 `json:"log_restored"`
	// LogProblem says why the archive's log does not extend the one in
	// place (empty when it does).
	LogProblem string `json:"log_problem,omitempty"`
	Previous   string `json:"previous,omitempty"`
}

// ErrOlderLog refuses a restore whose message log does not extend the
// one in place (fewer records, or another history): restoring it would
// lose acknowledged evidence. Keep the log in place, or force.
var ErrOlderLog = errors.New("the archive's message log does not hold all of the one in place")

// Restore replaces the gateway data directory dir with the archive read
// from r; the gateway must be stopped. Nothing changes on any error or
// refusal: the archive is checked and extracted beside dir, which it
// then replaces by rename (the old directory is kept beside it).
func Restore(ctx context.Context, dir string, r io.Reader, o RestoreOptions) (plan *RestorePlan, err error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	dir = filepath.Clean(dir)
	if err := archive.CheckRestorable(dir, "gateway"); err != nil {
		return nil, fmt.Errorf("restore gateway: %w", err)
	}
	var trusted []crypto.PublicKey
	if k, err := pki.ReadKey(filepath.Join(dir, authKeyFile)); err == nil {
		trusted = append(trusted, k.Public())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("restore gateway: authentication key: %w", err)
	}
	if o.AuthCert != nil {
		trusted = append(trusted, o.AuthCert.PublicKey)
	}
	plan = &RestorePlan{Signed: "node"}
	tmp := fmt.Sprintf("%s.restore-%d", dir, now().UnixNano())
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	trust := &archive.NodeTrust{Kind: "gateway", Keys: trusted, Force: o.Force, NoKeys: "give the gateway's certificate"}
	m, err := archive.Extract(r, tmp, archive.ReadOptions{Passphrase: o.Passphrase, Trust: trust.Check(dir)})
	if err != nil {
		return nil, fmt.Errorf("restore gateway: %w", err)
	}
	if trust.Forced {
		plan.Signed = "untrusted"
	}
	plan.Manifest = m
	if plan.Replaced, plan.Added, plan.Removed, err = archive.Diff(dir, m, func(rel string) bool {
		return strings.HasPrefix(rel, "config/") || strings.HasPrefix(rel, stateFile+"-") || strings.HasPrefix(rel, opmonFile+"-") || strings.HasPrefix(rel, logDir+"/"+msglog.IndexFile+"-")
	}); err != nil {
		return nil, fmt.Errorf("restore gateway: %w", err)
	}
	if h, err := msglog.ReadHead(ctx, filepath.Join(tmp, logDir)); err == nil {
		plan.LogRestored = h.Size
	}
	if old, err := msglog.ReadHead(ctx, filepath.Join(dir, logDir)); err == nil {
		plan.LogInPlace = old.Size
		if err := msglog.CheckExtends(ctx, old, filepath.Join(tmp, logDir)); err != nil {
			plan.LogProblem = err.Error()
		} else if n, err := msglog.Missing(ctx, filepath.Join(dir, logDir), old.Origin, old.Size, filepath.Join(tmp, logDir), tmp); err != nil {
			plan.LogProblem = "the log in place cannot be read: " + err.Error()
		} else if n > 0 {
			// Acknowledged, but not in the checkpoint compared above.
			plan.LogProblem = fmt.Sprintf("the log in place holds %d acknowledged records beyond its checkpoint that the archive lacks (it was stopped uncleanly: start and stop the gateway once to see them in its tree)", n)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		plan.LogProblem = "the log in place cannot be read: " + err.Error()
	}
	if o.DryRun {
		return plan, nil
	}
	if plan.LogProblem != "" && !o.Force {
		return plan, fmt.Errorf("restore gateway: %w: %s (the log in place has %d records, the archive's %d); keep the log in place, or force", ErrOlderLog, plan.LogProblem, plan.LogInPlace, plan.LogRestored)
	}
	if o.ConfigOut != "" {
		b, err := os.ReadFile(filepath.Join(tmp, filepath.FromSlash(archiveGatewayConfig)))
		if err != nil {
			return nil, errors.New("restore gateway: the archive has no gateway.json")
		}
		if err := pki.WriteFileAtomic(o.ConfigOut, b, 0o600); err != nil {
			return nil, fmt.Errorf("restore gateway: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(tmp, "config")); err != nil {
		return nil, fmt.Errorf("restore gateway: %w", err)
	}
	if err := keepNewerConf(ctx, dir, tmp); err != nil {
		return nil, fmt.Errorf("restore gateway: configuration in place: %w", err)
	}
	if plan.Previous, err = archive.Replace(dir, tmp, now()); err != nil {
		return nil, fmt.Errorf("restore gateway: %w", err)
	}
	tmp = ""
	return plan, nil
}

// keepNewerConf carries into the restored state.db in tmp each
// configuration the state.db in dir holds with a higher serial: the
// gateway never goes back to a configuration older than one it accepted
// (which may lack later revocations), and conf.Accept keeps its floor.
func keepNewerConf(ctx context.Context, dir, tmp string) error {
	cur := filepath.Join(dir, stateFile)
	if _, err := os.Stat(cur); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	scratch, err := os.MkdirTemp(tmp, ".current-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	snap := filepath.Join(scratch, stateFile)
	if err := store.VacuumInto(ctx, cur, snap); err != nil {
		return err
	}
	db, err := store.Open(ctx, filepath.Join(tmp, stateFile), stateMigrations)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `ATTACH DATABASE ? AS cur`, snap); err != nil {
		return err
	}
	defer db.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE cur`)
	_, err = db.ExecContext(ctx, `INSERT INTO main.global_conf (instance, serial, doc, etag, fetched_at)
		SELECT instance, serial, doc, etag, fetched_at FROM cur.global_conf WHERE true
		ON CONFLICT (instance) DO UPDATE SET serial = excluded.serial, doc = excluded.doc, etag = excluded.etag, fetched_at = excluded.fetched_at
		WHERE excluded.serial > main.global_conf.serial`)
	return err
}
