package authority

import (
	"context"
	"crypto"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/archive"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/store"
)

// Backups and restores of an authority's data directory
// (docs/design/backup.md). A backup is hot: the registry is copied with
// VACUUM INTO, a consistent snapshot taken beside a running authority.
// A restore never rewinds trust: the revocations, suspensions and
// agreement suspensions or terminations made after the backup are found
// (in the directory being replaced, or in a signed configuration a
// gateway holds) and the restore refuses until they are re-applied or
// explicitly discarded; the serial continues above every one published.

// archiveConfigPath is where an archive holds authority.json.
const archiveConfigPath = "config/authority.json"

// BackupOptions says what to add to an authority's backup.
type BackupOptions = archive.BackupOptions

// Backup writes a signed archive of the authority data directory dir to
// w: a consistent copy of the registry and every other file (keys,
// certificates, anchor, TSA files), signed with the configuration-signing
// key. The authority may be running.
func Backup(ctx context.Context, dir string, w io.Writer, o BackupOptions) (*archive.Manifest, error) {
	dir = filepath.Clean(dir)
	key, err := pki.ReadKey(filepath.Join(dir, confSignKey))
	if err != nil {
		return nil, fmt.Errorf("back up authority: configuration-signing key: %w", err)
	}
	an, err := conf.ReadAnchor(filepath.Join(dir, AnchorFile))
	if err != nil {
		return nil, fmt.Errorf("back up authority: %w", err)
	}
	stage, err := os.MkdirTemp(dir, archive.StagePrefix)
	if err != nil {
		return nil, fmt.Errorf("back up authority: %w", err)
	}
	defer os.RemoveAll(stage)
	regCopy := filepath.Join(stage, registryFile)
	if err := store.VacuumInto(ctx, filepath.Join(dir, registryFile), regCopy); err != nil {
		return nil, fmt.Errorf("back up authority: %w", err)
	}
	st, err := readTrustState(ctx, regCopy)
	if err != nil {
		return nil, fmt.Errorf("back up authority: %w", err)
	}
	srcs, err := archive.DirSources(dir, isRegistryFile)
	if err != nil {
		return nil, fmt.Errorf("back up authority: %w", err)
	}
	srcs = append(srcs, archive.Source{Path: registryFile, Disk: regCopy})
	if o.ConfigFile != "" {
		srcs = append(srcs, archive.Source{Path: archiveConfigPath, Disk: o.ConfigFile})
	}
	m, err := archive.Write(w, srcs, archive.WriteOptions{
		NodeKind: "authority", NodeID: an.Instance, SampanVersion: o.Version, Key: key, Passphrase: o.Passphrase,
		Meta: map[string]string{"conf_serial": strconv.FormatUint(st.serial, 10)},
	})
	if err != nil {
		return nil, fmt.Errorf("back up authority: %w", err)
	}
	return m, nil
}

func isRegistryFile(rel string) bool {
	return rel == registryFile || strings.HasPrefix(rel, registryFile+"-")
}

// RestoreOptions says how to restore an authority.
type RestoreOptions struct {
	// Passphrase opens an encrypted archive.
	Passphrase []byte
	// Anchor, when set, is trusted as the node's keys in place of the
	// data directory's anchor (for a directory that was lost).
	Anchor *conf.Anchor
	// LatestConf is a signed configuration document published after the
	// backup (from a gateway's cache), verified against the anchor: what
	// it revoked or suspended counts as done after the backup.
	LatestConf []byte
	// ConfigOut, when set, receives the archive's authority.json.
	ConfigOut string
	// DryRun reports what would change and changes nothing.
	DryRun bool
	// Force accepts an archive not signed by the node's key.
	Force bool
	// Reapply re-applies the trust-reducing changes the backup lacks, as
	// new audited changes; Discard drops them, audited as discarded.
	Reapply, Discard bool
	// Operator names who restores, for the audit log.
	Operator string
	// Now, when set, replaces time.Now.
	Now func() time.Time
}

// TrustChange is a trust-reducing change made after a backup, which
// restoring the backup alone would undo.
type TrustChange struct {
	Kind string `json:"kind"` // revocation, suspension, agreement, federation
	ID   string `json:"id"`   // certificate serial, suspension id, agreement id, instance
	What string `json:"what"`
	// Who and When come from the audit log when it records the change;
	// Source says where the change is known from.
	Who    string `json:"who,omitempty"`
	When   string `json:"when,omitempty"`
	Source string `json:"source"`
}

// String describes the change for an operator.
func (c TrustChange) String() string {
	s := c.Kind + " " + c.ID + ": " + c.What
	if c.Who != "" {
		s += " by " + c.Who
	}
	if c.When != "" {
		s += " at " + c.When
	}
	return s + " (" + c.Source + ")"
}

// RestorePlan says what a restore changes (or, dry, would change).
type RestorePlan struct {
	Manifest *archive.Manifest `json:"manifest"`
	// Signed says whose key signed the archive: "node", or "untrusted"
	// (accepted with Force).
	Signed   string         `json:"signed"`
	Replaced []string       `json:"replaced"` // files whose content changes
	Added    []string       `json:"added"`    // files the directory lacks
	Removed  []string       `json:"removed"`  // files the archive lacks
	Before   map[string]int `json:"before,omitempty"`
	After    map[string]int `json:"after"`
	Undone   []TrustChange  `json:"undone"`
	// Action is what happens to Undone: refused, reapplied, discarded
	// or none.
	Action string `json:"action"`
	// SerialFloor is the serial the restored authority publishes above.
	SerialFloor uint64 `json:"serial_floor"`
	// Previous is where the replaced directory was moved.
	Previous string `json:"previous,omitempty"`
}

// ErrWouldRewind refuses a restore that would undo trust-reducing changes
// made after the backup: re-apply or discard them (RestoreOptions).
var ErrWouldRewind = errors.New("the restore would undo trust-reducing changes made after the backup")

// Restore replaces the authority data directory dir with the archive read
// from r; the authority must be stopped. Nothing is changed on any error
// or refusal: the archive is extracted and prepared in a directory beside
// dir, which then replaces dir by rename (the old one is kept beside it,
// its path in the plan).
func Restore(ctx context.Context, dir string, r io.Reader, o RestoreOptions) (plan *RestorePlan, err error) {
	if o.Reapply && o.Discard {
		return nil, errors.New("restore authority: re-apply or discard, not both")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	dir = filepath.Clean(dir)
	if err := archive.CheckRestorable(dir, "authority"); err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}
	trusted, anchor, err := nodeKeys(dir, o.Anchor)
	if err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}
	plan = &RestorePlan{Signed: "node", Action: "none"}
	tmp := fmt.Sprintf("%s.restore-%d", dir, now().UnixNano())
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	trust := &archive.NodeTrust{Kind: "authority", Keys: trusted, Force: o.Force, NoKeys: "give the anchor"}
	m, err := archive.Extract(r, tmp, archive.ReadOptions{Passphrase: o.Passphrase, Trust: trust.Check(dir)})
	if err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}
	if trust.Forced {
		plan.Signed = "untrusted"
	}
	plan.Manifest = m
	restored := filepath.Join(tmp, registryFile)
	if _, err := os.Stat(restored); err != nil {
		return nil, fmt.Errorf("restore authority: the archive has no %s", registryFile)
	}
	if anchor == nil {
		if anchor, err = conf.ReadAnchor(filepath.Join(tmp, AnchorFile)); err != nil {
			return nil, fmt.Errorf("restore authority: archive: %w", err)
		}
	} else if err := sameKeys(anchor, filepath.Join(tmp, AnchorFile)); err != nil && !o.Force {
		return nil, fmt.Errorf("restore authority: %w; restore an archive made after the last step of the rotation, or force", err)
	}
	if plan.Replaced, plan.Added, plan.Removed, err = archive.Diff(dir, m, func(rel string) bool {
		return strings.HasPrefix(rel, registryFile+"-") || strings.HasPrefix(rel, "config/")
	}); err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}

	// What the backup knows, and what was done or published after it.
	if err := migrateCopy(ctx, restored); err != nil {
		return nil, fmt.Errorf("restore authority: archive registry: %w", err)
	}
	backup, err := readTrustState(ctx, restored)
	if err != nil {
		return nil, fmt.Errorf("restore authority: archive registry: %w", err)
	}
	plan.After = backup.counts
	var latest []*trustState
	var old *trustState
	if _, err := os.Stat(filepath.Join(dir, registryFile)); err == nil {
		// Read from a snapshot: the directory's registry is not opened
		// for writing, and a dry run leaves it byte for byte.
		// In a directory of its own: no file of the archive (a crafted
		// -wal) can sit beside the snapshot and be read as part of it.
		scratch, err := os.MkdirTemp(tmp, ".current-")
		if err != nil {
			return nil, fmt.Errorf("restore authority: %w", err)
		}
		snap := filepath.Join(scratch, registryFile)
		if err := store.VacuumInto(ctx, filepath.Join(dir, registryFile), snap); err != nil {
			return nil, fmt.Errorf("restore authority: current registry: %w", err)
		}
		if err := migrateCopy(ctx, snap); err != nil {
			return nil, fmt.Errorf("restore authority: current registry: %w", err)
		}
		old, err = readTrustState(ctx, snap)
		os.RemoveAll(scratch)
		if err != nil {
			return nil, fmt.Errorf("restore authority: current registry: %w", err)
		}
		plan.Before = old.counts
		latest = append(latest, old)
	}
	if o.LatestConf != nil {
		c, err := conf.Verify(o.LatestConf, anchor)
		if err != nil {
			return nil, fmt.Errorf("restore authority: latest configuration: %w", err)
		}
		latest = append(latest, confTrustState(c))
	}
	if len(latest) == 0 && !o.Force {
		// Nothing says what was published after the backup: neither the
		// registry in place nor a configuration a gateway holds. The
		// restore could neither list what it undoes nor keep above the
		// serials gateways have seen (a clock behind would publish under
		// them).
		return nil, fmt.Errorf("restore authority: %s has no registry, and no later configuration was given: copy a gateway's latest configuration and give it with --latest-conf, so that nothing published after the backup is undone (or force)", dir)
	}
	plan.SerialFloor = backup.serial
	for _, l := range latest {
		plan.SerialFloor = max(plan.SerialFloor, l.serial)
	}
	plan.Undone = undone(backup, latest)
	switch {
	case len(plan.Undone) == 0:
	case o.Reapply:
		plan.Action = "reapplied"
	case o.Discard:
		plan.Action = "discarded"
	default:
		plan.Action = "refused"
	}
	if o.DryRun {
		return plan, nil
	}
	if plan.Action == "refused" {
		var b strings.Builder
		for _, c := range plan.Undone {
			b.WriteString("\n  " + c.String())
		}
		return plan, fmt.Errorf("restore authority: %w; re-apply them (--reapply) or discard them (--discard):%s", ErrWouldRewind, b.String())
	}
	op := o.Operator
	if op == "" {
		op = "restore"
	}
	if err := finishRegistry(ctx, restored, backup, old, latest, plan, op); err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}
	if after, err := readTrustState(ctx, restored); err == nil {
		plan.After = after.counts
	}
	cfgFile := filepath.Join(tmp, filepath.FromSlash(archiveConfigPath))
	if o.ConfigOut != "" {
		b, err := os.ReadFile(cfgFile)
		if err != nil {
			return nil, errors.New("restore authority: the archive has no authority.json")
		}
		if err := pki.WriteFileAtomic(o.ConfigOut, b, 0o600); err != nil {
			return nil, fmt.Errorf("restore authority: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(tmp, "config")); err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}
	if plan.Previous, err = archive.Replace(dir, tmp, now()); err != nil {
		return nil, fmt.Errorf("restore authority: %w", err)
	}
	tmp = ""
	return plan, nil
}

// nodeKeys returns the keys an archive of the node in dir must be signed
// with: the configuration-signing key in dir and the keys of the anchor
// (extra, or else dir's); and that anchor, which configurations are
// verified with (nil when there is none).
func nodeKeys(dir string, extra *conf.Anchor) ([]crypto.PublicKey, *conf.Anchor, error) {
	var keys []crypto.PublicKey
	if k, err := pki.ReadKey(filepath.Join(dir, confSignKey)); err == nil {
		keys = append(keys, k.Public())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("configuration-signing key: %w", err)
	}
	anchor := extra
	if anchor == nil {
		a, err := conf.ReadAnchor(filepath.Join(dir, AnchorFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		anchor = a
	}
	if anchor != nil {
		for i, k := range anchor.Keys {
			blk, _ := pem.Decode([]byte(k.PublicKey))
			if blk == nil {
				return nil, nil, fmt.Errorf("anchor keys[%d]: not PEM", i)
			}
			pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("anchor keys[%d]: %w", i, err)
			}
			keys = append(keys, pub)
		}
	}
	return keys, anchor, nil
}

// migrateCopy brings a registry copy to this binary's schema.
func migrateCopy(ctx context.Context, path string) error {
	db, err := store.Open(ctx, path, migrations)
	if err != nil {
		return err
	}
	return db.Close()
}

// trustState is what a registry or a configuration says about trust.
type trustState struct {
	source      string
	serial      uint64
	crlNumber   int64
	revoked     map[string]bool
	certs       map[string]certRow
	suspensions map[string]string // id → JSON
	agreements  map[string]policy.Agreement
	federation  map[string]bool // foreign instances trusted
	audit       []auditRow
	counts      map[string]int
}

type certRow struct {
	profile, subject, fingerprint, notAfter, pem string
	revokedAt, keyFP                             sql.NullString
}

type auditRow struct{ at, operator, action, detail string }

func newTrustState(source string) *trustState {
	return &trustState{source: source, revoked: map[string]bool{}, certs: map[string]certRow{}, suspensions: map[string]string{},
		agreements: map[string]policy.Agreement{}, federation: map[string]bool{}, counts: map[string]int{}}
}

// readTrustState reads a registry file, which nothing else writes.
func readTrustState(ctx context.Context, path string) (*trustState, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	s := newTrustState("registry")
	if err := db.QueryRowContext(ctx, `SELECT serial, crl_number FROM conf_state WHERE id = 1`).Scan(&s.serial, &s.crlNumber); err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT serial, profile, subject, fingerprint, not_after, revoked_at, pem, key_fp FROM certificates`)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	for rows.Next() {
		var serial string
		var c certRow
		if err := rows.Scan(&serial, &c.profile, &c.subject, &c.fingerprint, &c.notAfter, &c.revokedAt, &c.pem, &c.keyFP); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read registry: %w", err)
		}
		s.certs[serial] = c
		if c.revokedAt.Valid {
			s.revoked[serial] = true
		}
	}
	rows.Close()
	rows, err = db.QueryContext(ctx, `SELECT kind, id, doc FROM policy_items WHERE kind IN (?, ?)`, kindSuspension, kindAgreement)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	for rows.Next() {
		var kind, id, doc string
		if err := rows.Scan(&kind, &id, &doc); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read registry: %w", err)
		}
		if kind == kindSuspension {
			s.suspensions[id] = doc
			continue
		}
		var ag policy.Agreement
		if err := json.Unmarshal([]byte(doc), &ag); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read registry: agreement %s: %w", id, err)
		}
		s.agreements[id] = ag
	}
	rows.Close()
	rows, err = db.QueryContext(ctx, `SELECT instance FROM federation`)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	for rows.Next() {
		var instance string
		if err := rows.Scan(&instance); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read registry: %w", err)
		}
		s.federation[instance] = true
	}
	rows.Close()
	// Changes made, not calls refused: a refused call shares its action's
	// name ("revoke certificate") and must not be taken for who made the
	// change. A registry from before the outcome column marks refusals in
	// the action alone ("refused 403").
	var hasOutcome int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('audit_log') WHERE name = 'outcome'`).Scan(&hasOutcome); err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	q := `SELECT at, operator, action, detail FROM audit_log WHERE action NOT LIKE 'refused %' ORDER BY rowid`
	if hasOutcome > 0 {
		q = `SELECT at, operator, action, detail FROM audit_log WHERE outcome = 'ok' ORDER BY rowid`
	}
	rows, err = db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	for rows.Next() {
		var a auditRow
		if err := rows.Scan(&a.at, &a.operator, &a.action, &a.detail); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read registry: %w", err)
		}
		s.audit = append(s.audit, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read registry: %w", err)
	}
	for _, t := range []string{"members", "subsystems", "gateways", "global_groups", "certificates", "policy_items", "federation", "audit_log"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("read registry: %w", err)
		}
		s.counts[t] = n
	}
	s.counts["revoked"] = len(s.revoked)
	s.counts["suspensions"] = len(s.suspensions)
	return s, nil
}

// confTrustState is what a verified configuration says about trust.
func confTrustState(c *conf.Config) *trustState {
	s := newTrustState(fmt.Sprintf("configuration serial %d of %s", c.Serial, c.GeneratedAt.Format(time.RFC3339)))
	s.serial = c.Serial
	for _, r := range c.Revoked {
		s.revoked[strings.ToLower(r)] = true
	}
	for _, f := range c.Federation {
		s.federation[f.Anchor.Instance] = true
	}
	if c.Policy != nil {
		for _, sp := range c.Policy.Suspensions {
			b, _ := json.Marshal(sp)
			s.suspensions[sp.ID] = string(b)
		}
		for _, ag := range c.Policy.Agreements {
			s.agreements[ag.ID] = ag
		}
	}
	return s
}

// sameSuspension says whether two suspension documents (from a registry
// or a configuration) stop the same flows.
func sameSuspension(a, b string) bool {
	var x, y policy.Suspension
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return x.When.Flow == y.When.Flow && slices.Equal(x.When.Classes, y.When.Classes) && slices.Equal(x.When.Flags, y.When.Flags)
}

// statusRank orders agreement statuses by how much they stop.
func statusRank(s string) int {
	switch s {
	case policy.StatusSuspended:
		return 1
	case policy.StatusTerminated:
		return 2
	}
	return 0
}

// undone lists the trust-reducing changes the latest states hold and the
// backup does not, each once, with who and when from an audit log when
// one records it.
func undone(backup *trustState, latest []*trustState) []TrustChange {
	var out []TrustChange
	seen := map[string]bool{}
	add := func(c TrustChange, l *trustState, match func(auditRow) bool) {
		k := c.Kind + " " + c.ID
		if seen[k] {
			return
		}
		seen[k] = true
		c.Source = l.source
		for _, a := range slices.Backward(l.audit) {
			if match(a) {
				c.Who, c.When, c.Source = a.operator, a.at, "audit log: "+a.action+" "+a.detail
				break
			}
		}
		out = append(out, c)
	}
	for _, l := range latest {
		for _, serial := range sortedKeys(l.revoked) {
			if backup.revoked[serial] {
				continue
			}
			add(TrustChange{Kind: "revocation", ID: serial, What: "certificate revoked"}, l, func(a auditRow) bool {
				return a.action == "revoke certificate" && a.detail == serial
			})
		}
		for _, id := range sortedKeys(l.suspensions) {
			what := "flows suspended"
			if was, ok := backup.suspensions[id]; ok {
				if sameSuspension(was, l.suspensions[id]) {
					continue
				}
				what = "suspension changed (the backup has " + was + ")"
			}
			add(TrustChange{Kind: "suspension", ID: id, What: what}, l, func(a auditRow) bool {
				return a.action == "suspend flows" && strings.HasPrefix(a.detail, id+": ")
			})
		}
		for _, id := range sortedKeys(l.agreements) {
			ag := l.agreements[id]
			was, ok := backup.agreements[id]
			if !ok || statusRank(ag.Status) <= statusRank(was.Status) {
				continue
			}
			add(TrustChange{Kind: "agreement", ID: id, What: "agreement " + ag.Status + " (the backup has it " + was.Status + ")"}, l, func(a auditRow) bool {
				return (a.action == "agreement status" && strings.HasPrefix(a.detail, id+" "+ag.Status+":")) ||
					(a.action == "put agreement" && a.detail == id+" "+ag.Status)
			})
		}
		for _, instance := range sortedKeys(backup.federation) {
			if l.federation[instance] {
				continue
			}
			add(TrustChange{Kind: "federation", ID: instance, What: "federation with " + instance + " removed"}, l, func(a auditRow) bool {
				return a.action == "remove federation" && a.detail == instance
			})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// finishRegistry prepares the restored registry in one transaction:
// carries over certificates issued after the backup (the CA issued them:
// they must stay revocable), re-applies or records the discarding of the
// undone changes, sets the serial and CRL number floors, and audits the
// restore.
func finishRegistry(ctx context.Context, path string, backup, old *trustState, latest []*trustState, plan *RestorePlan, op string) error {
	db, err := store.Open(ctx, path, migrations)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	at := now()
	audit := func(action, detail string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (at, operator, action, detail) VALUES (?, ?, ?, ?)`, at, op, action, detail)
		return err
	}
	m := plan.Manifest
	if err := audit("restore", fmt.Sprintf("archive of %s made %s, signed by the %s key; serial floor %d; %d trust-reducing changes made after it: %s",
		m.NodeID, m.CreatedAt.Format(time.RFC3339), plan.Signed, plan.SerialFloor, len(plan.Undone), plan.Action)); err != nil {
		return err
	}
	if old != nil {
		for _, serial := range sortedKeys(old.certs) {
			if _, ok := backup.certs[serial]; ok {
				continue
			}
			c := old.certs[serial]
			// Inserted unrevoked: a revocation after the backup is among
			// the undone changes, re-applied or discarded below.
			if _, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, profile, subject, fingerprint, not_after, revoked_at, pem, key_fp) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)`,
				serial, c.profile, c.subject, c.fingerprint, c.notAfter, c.pem, c.keyFP); err != nil {
				return fmt.Errorf("carry over certificate %s: %w", serial, err)
			}
			if err := audit("restore: certificate carried over", serial+" "+c.subject); err != nil {
				return err
			}
		}
	}
	for _, c := range plan.Undone {
		if plan.Action == "discarded" {
			if err := audit("restore: discarded "+c.Kind, c.String()); err != nil {
				return err
			}
			continue
		}
		if err := reapply(ctx, tx, c, latest, at); err != nil {
			return fmt.Errorf("re-apply %s %s: %w", c.Kind, c.ID, err)
		}
		if err := audit("restore: reapplied "+c.Kind, c.String()); err != nil {
			return err
		}
	}
	crl := backup.crlNumber
	if old != nil {
		crl = max(crl, old.crlNumber)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE conf_state SET serial = ?, crl_number = ? WHERE id = 1`, plan.SerialFloor, crl); err != nil {
		return err
	}
	return tx.Commit()
}

// reapply makes one undone change again in the restored registry.
func reapply(ctx context.Context, tx *sql.Tx, c TrustChange, latest []*trustState, at string) error {
	switch c.Kind {
	case "revocation":
		// At the time it was first revoked, when a registry knows it: the
		// CRL keeps saying since when.
		for _, l := range latest {
			if r, ok := l.certs[c.ID]; ok && r.revokedAt.Valid {
				at = r.revokedAt.String
				break
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL`, at, c.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		// Known only from a configuration: the CA's record of the
		// certificate is lost, its revocation is kept.
		_, err = tx.ExecContext(ctx, `INSERT INTO certificates (serial, profile, subject, fingerprint, not_after, revoked_at, pem, key_fp) VALUES (?, 'unknown', '', ?, '', ?, '', '')`,
			c.ID, "unknown:"+c.ID, at)
		return err
	case "suspension":
		doc := ""
		for _, l := range latest {
			if doc == "" {
				doc = l.suspensions[c.ID]
			}
		}
		if doc == "" {
			return errors.New("its content is not known")
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO policy_items (kind, id, doc, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`, kindSuspension, c.ID, doc, at)
		return err
	case "agreement":
		var doc string
		if err := tx.QueryRowContext(ctx, `SELECT doc FROM policy_items WHERE kind = ? AND id = ?`, kindAgreement, c.ID).Scan(&doc); err != nil {
			return err
		}
		var ag policy.Agreement
		if err := json.Unmarshal([]byte(doc), &ag); err != nil {
			return err
		}
		for _, l := range latest {
			if la, ok := l.agreements[c.ID]; ok && statusRank(la.Status) > statusRank(ag.Status) {
				ag.Status = la.Status
			}
		}
		b, err := json.Marshal(ag)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE policy_items SET doc = ?, updated_at = ? WHERE kind = ? AND id = ?`, string(b), at, kindAgreement, c.ID)
		return err
	case "federation":
		_, err := tx.ExecContext(ctx, `DELETE FROM federation WHERE instance = ?`, c.ID)
		return err
	}
	return fmt.Errorf("unknown kind %q", c.Kind)
}

// sameKeys checks that the archive's anchor (at path) holds every
// configuration-signing key of the anchor in force: a key rotated in
// after the backup is one gateways may already trust alone (they follow
// the keys of the latest configuration they verified), and an authority
// restored without it would publish configurations they refuse.
func sameKeys(current *conf.Anchor, path string) error {
	archived, err := conf.ReadAnchor(path)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	have := map[string]bool{}
	for _, k := range archived.Keys {
		have[k.PublicKey] = true
	}
	for _, k := range current.Keys {
		if !have[k.PublicKey] {
			return fmt.Errorf("the configuration-signing key %s was rotated in after this backup: the archive's anchor does not hold it", k.KeyID)
		}
	}
	return nil
}
