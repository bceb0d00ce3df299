package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
)

// liveConfig is what a reload of the configuration file may change while
// the gateway serves: the services with their access rights, and how
// client systems connect. Each request reads it once.
type liveConfig struct {
	cfg      *Config
	services map[ident.ServiceID]*Service
}

func newLiveConfig(c *Config) *liveConfig {
	l := &liveConfig{cfg: c, services: make(map[ident.ServiceID]*Service, len(c.Services))}
	for i := range c.Services {
		l.services[c.Services[i].ID] = &c.Services[i]
	}
	return l
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Services int `json:"services"`
	Clients  int `json:"clients"`
}

// Reload loads the configuration again (Options.LoadConfig, or the file
// it came from) and applies its services, access rights and client
// connections, all at once, to the requests that arrive from then on
// (those under way finish under the old ones). A configuration that does
// not load, or that changes a setting only a restart applies (listeners,
// identity, anchor, limits, log, …), changes nothing and is refused with
// the reason.
func (g *Gateway) Reload() (ReloadResult, error) {
	if g.loadConfig == nil {
		return ReloadResult{}, fmt.Errorf("reload: the gateway's configuration was not loaded from a file")
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	nc, err := g.loadConfig()
	if err != nil {
		return ReloadResult{}, fmt.Errorf("reload: %w; the running configuration stays", err)
	}
	if f := restartOnly(g.cfg, nc); f != "" {
		return ReloadResult{}, fmt.Errorf("reload: %s changed, which only a restart applies; the running configuration stays", f)
	}
	g.live.Store(newLiveConfig(nc))
	res := ReloadResult{Services: len(nc.Services), Clients: len(nc.Clients)}
	g.log.Info("configuration reloaded", "services", res.Services, "clients", res.Clients)
	return res, nil
}

// restartOnly names the top-level settings, other than those a reload
// applies, in which b differs from a; "" when none does.
func restartOnly(a, b *Config) string {
	ja, jb := settings(a), settings(b)
	var diff []string
	for k, va := range ja {
		if vb, ok := jb[k]; !ok || !reflect.DeepEqual(va, vb) {
			diff = append(diff, k)
		}
	}
	for k := range jb {
		if _, ok := ja[k]; !ok {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return strings.Join(diff, ", ")
}

// settings is a configuration as its JSON fields, without those a reload
// applies.
func settings(c *Config) map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"services", "clients", "default_connection"} {
		delete(m, k)
	}
	return m
}

// serveReload reloads the configuration file (POST /config/reload on the
// operations listener): 200 with what it applied, or 409 with why the
// running configuration stays.
func (g *Gateway) serveReload(w http.ResponseWriter, r *http.Request) {
	res, err := g.Reload()
	if err != nil {
		g.log.Warn("configuration file not reloaded", "err", err)
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}
