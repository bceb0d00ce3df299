package authority

import (
	"net/netip"
	"testing"
	"time"
)

// TestThrottleKeepsBlockedAddresses: when the throttle tracks as many
// addresses as it may, it forgets unblocked ones first, so failures from
// many new addresses never unblock one that is blocked.
func TestThrottleKeepsBlockedAddresses(t *testing.T) {
	th := newThrottle(10, time.Minute)
	now := time.Now()
	attacker := netip.MustParsePrefix("2001:db8:0:1::/64")
	for range 10 {
		th.add(attacker, now)
	}
	if th.blocked(attacker, now) == 0 {
		t.Fatal("not blocked after 10 failures")
	}
	base := netip.MustParseAddr("2001:db8:1::").As16()
	for i := range maxThrottled {
		a := base
		a[6], a[7] = byte(i>>8), byte(i)
		p, _ := netip.AddrFrom16(a).Prefix(64)
		th.add(p, now.Add(time.Second))
	}
	if th.blocked(attacker, now.Add(2*time.Second)) == 0 {
		t.Error("an address blocked for failed calls is unblocked by new addresses' failures")
	}
}
