package authority

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/ops"
)

// Options are the optional settings of NewWithOptions; the zero value
// of each is documented with it.
type Options struct {
	// Log receives the authority's log lines. Default slog.Default().
	Log *slog.Logger
	// LoadConfig loads the configuration again for a reload (Reload:
	// SIGHUP in sampan authority run, POST /config/reload on the
	// operations listener), the same way as the one given to New.
	// Default: LoadConfig of the file the configuration came from, if
	// any; none: the authority does not reload.
	LoadConfig func() (*Config, error)
}

// liveFields are the settings of Config, as the file names them, that a
// reload applies at once. Every other one only a restart applies.
var liveFields = []string{"operators", "conf_validity", "conf_interval", "cert_validity", "member_classes", "tsa_requests_per_minute", "ai_obligations"}

// reloadable is the state of an authority that a reload changes.
type reloadable struct {
	settings        atomic.Pointer[Config] // cfg, then each configuration a reload applied
	loadConfig      func() (*Config, error)
	reloadMu        sync.Mutex    // one reload at a time
	intervalChanged chan struct{} // tells the re-publication timer of a new conf_interval
}

func (a *Authority) initReload(c *Config, o Options) {
	a.settings.Store(c)
	a.intervalChanged = make(chan struct{}, 1)
	a.loadConfig = o.LoadConfig
	if a.loadConfig == nil && c.file != "" {
		file := c.file
		a.loadConfig = func() (*Config, error) { return LoadConfig(file) }
	}
}

// config returns the configuration in force: the one the authority
// started with, or the one a reload applied since. Its restart-only
// fields are those of cfg.
func (a *Authority) config() *Config { return a.settings.Load() }

// ReloadResult says what a reload applied.
type ReloadResult struct {
	// Changed names the settings that changed (as the file names them);
	// empty when the file is as the running configuration.
	Changed []string `json:"changed"`
	// Operators is how many operators the configuration now names.
	Operators int `json:"operators"`
}

// Reload loads the configuration again (Options.LoadConfig) and applies
// its operators (with their roles and expiry), conf_validity,
// conf_interval, cert_validity, member_classes and
// tsa_requests_per_minute all at once: a token the new file no longer
// names, or names as expired, is refused from the next call on. A file
// that does not load or validate, that changes any other setting (only
// a restart applies those: all are named), or that drops a member class
// registered members have, changes nothing and is refused with the
// reason. The outcome is logged and counted; an applied change is
// audited.
func (a *Authority) Reload(ctx context.Context) (ReloadResult, error) {
	res, err := a.reload(ctx)
	if err != nil {
		a.metrics.reloads.WithLabelValues(outcomeRefused).Inc()
		a.log.Error("configuration file not reloaded", "err", err)
		return res, err
	}
	a.metrics.reloads.WithLabelValues(outcomeOK).Inc()
	a.log.Info("configuration reloaded", "changed", strings.Join(res.Changed, ","), "operators", res.Operators)
	return res, nil
}

func (a *Authority) reload(ctx context.Context) (ReloadResult, error) {
	if a.loadConfig == nil {
		return ReloadResult{}, errors.New("reload: the authority's configuration was not loaded from a file")
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	nc, err := a.loadConfig()
	if err != nil {
		return ReloadResult{}, fmt.Errorf("reload: %w; the running configuration stays", err)
	}
	old := a.config()
	if f := changedFields(old, nc, false); len(f) > 0 {
		return ReloadResult{}, fmt.Errorf("reload: %s changed, which only a restart applies; the running configuration stays", strings.Join(f, ", "))
	}
	if err := a.classesInUse(ctx, nc.MemberClasses); err != nil {
		return ReloadResult{}, fmt.Errorf("reload: %w; the running configuration stays", err)
	}
	// What tests set in code and no file holds.
	nc.authFailures, nc.authWindow, nc.maxConfSize = old.authFailures, old.authWindow, old.maxConfSize
	changed := changedFields(old, nc, true)
	res := ReloadResult{Changed: changed, Operators: len(nc.Operators)}
	if res.Changed == nil {
		res.Changed = []string{}
	}
	a.settings.Store(nc)
	a.tsaThrottle.setMax(nc.TSARate)
	if nc.ConfInterval != old.ConfInterval {
		select {
		case a.intervalChanged <- struct{}{}:
		default: // already told; it reads the latest
		}
	}
	if len(changed) == 0 {
		return res, nil
	}
	// The audit log holds what changed, not how often a file was read
	// again: a reload that changes nothing writes nothing.
	err = a.inTx(ctx, func(tx *sql.Tx) error {
		return a.audit(ctx, tx, "-", "reload configuration", strings.Join(changed, ", "))
	})
	if err != nil {
		a.log.Error("audit a configuration reload", "err", err)
	}
	if nc.ConfValidity != old.ConfValidity {
		if err := a.Publish(ctx); err != nil {
			a.log.Error("publish after a reload; the next publication retries", "err", err)
		}
	}
	return res, nil
}

// changedFields names, sorted, the settings in which b differs from a:
// those a reload applies when live is true, every other one otherwise.
func changedFields(a, b *Config, live bool) []string {
	ja, jb := fieldsOf(a), fieldsOf(b)
	var diff []string
	for k := range ja {
		if slices.Contains(liveFields, k) != live {
			continue
		}
		if vb, ok := jb[k]; !ok || !reflect.DeepEqual(ja[k], vb) {
			diff = append(diff, k)
		}
	}
	for k := range jb {
		if _, ok := ja[k]; !ok && slices.Contains(liveFields, k) == live {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return diff
}

// fieldsOf is a configuration as its JSON fields.
func fieldsOf(c *Config) map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// classesInUse refuses a list of member classes that leaves out the
// class of a registered member.
func (a *Authority) classesInUse(ctx context.Context, classes []string) error {
	ids, err := a.memberIDs(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m, err := ident.ParseMember(id)
		if err != nil {
			return fmt.Errorf("registry member %q: %w", id, err)
		}
		if !slices.Contains(classes, m.Class) {
			return fmt.Errorf("member_classes: %s is the class of registered member %s", m.Class, id)
		}
	}
	return nil
}

func (a *Authority) memberIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := a.readTx(ctx, func(tx *sql.Tx) (err error) {
		ids, err = strings1(ctx, tx, `SELECT id FROM members ORDER BY id`)
		return err
	})
	return ids, err
}

// opsHandlers are what the authority mounts on its operations listener:
// POST /config/reload when it can reload.
func (a *Authority) opsHandlers() map[string]http.Handler {
	if a.loadConfig == nil {
		return nil
	}
	return map[string]http.Handler{"POST /config/reload": ops.Mutating(http.HandlerFunc(a.serveReload))}
}

// serveReload reloads the configuration file (POST /config/reload): 200
// with what it applied, or 409 with why the running configuration stays.
func (a *Authority) serveReload(w http.ResponseWriter, r *http.Request) {
	res, err := a.Reload(r.Context())
	if err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}
