package authority

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// maxThrottled bounds the client addresses a throttle tracks at once.
const maxThrottled = 10000

// throttle counts events per client address in fixed windows and refuses
// an address that reached max events until its window ends. IPv6
// addresses count by their /64, which one client usually holds whole.
type throttle struct {
	max    int
	window time.Duration

	mu sync.Mutex
	m  map[netip.Prefix]*throttleWindow
}

type throttleWindow struct {
	start time.Time
	n     int
}

func newThrottle(max int, window time.Duration) *throttle {
	return &throttle{max: max, window: window, m: map[netip.Prefix]*throttleWindow{}}
}

// setMax changes how many events a window allows, from the next event
// on.
func (t *throttle) setMax(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.max = n
}

// clientKey returns the throttling key of a request's peer address.
func clientKey(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// blocked reports how long key must still wait, or 0.
func (t *throttle) blocked(key netip.Prefix, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.m[key]
	if w == nil || now.Sub(w.start) >= t.window || w.n < t.max {
		return 0
	}
	return w.start.Add(t.window).Sub(now)
}

// add counts one event of key.
func (t *throttle) add(key netip.Prefix, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(key, now)
}

func (t *throttle) addLocked(key netip.Prefix, now time.Time) {
	w := t.m[key]
	if w == nil || now.Sub(w.start) >= t.window {
		if w == nil && len(t.m) >= maxThrottled {
			t.sweep(now)
		}
		w = &throttleWindow{start: now}
		t.m[key] = w
	}
	w.n++
}

// take counts one event of key unless key is blocked; it returns how
// long to wait when it is.
func (t *throttle) take(key netip.Prefix, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.m[key]; w != nil && now.Sub(w.start) < t.window && w.n >= t.max {
		return w.start.Add(t.window).Sub(now)
	}
	t.addLocked(key, now)
	return 0
}

// sweep drops ended windows. When every tracked address is still within
// its window, it makes room by forgetting a tenth of them: those not
// blocked first, the oldest windows first, so that new addresses never
// unblock one that is.
func (t *throttle) sweep(now time.Time) {
	for k, w := range t.m {
		if now.Sub(w.start) >= t.window {
			delete(t.m, k)
		}
	}
	if len(t.m) < maxThrottled {
		return
	}
	type entry struct {
		key     netip.Prefix
		blocked bool
		start   time.Time
	}
	all := make([]entry, 0, len(t.m))
	for k, w := range t.m {
		all = append(all, entry{k, w.n >= t.max, w.start})
	}
	slices.SortFunc(all, func(a, b entry) int {
		if a.blocked != b.blocked {
			if a.blocked {
				return 1
			}
			return -1
		}
		return a.start.Compare(b.start)
	})
	for _, e := range all[:len(all)/10+1] {
		delete(t.m, e.key)
	}
}

// retryAfter renders a wait as a Retry-After value in whole seconds.
func retryAfter(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}
