package opmon

import (
	"encoding/xml"
	"errors"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
)

// TestHealthDataRestricted: health data restricted to a client (not the
// gateway's owner) list no other tenant's services: RenderHealthData
// refuses a restricted request, as X-Road leaves health data to the
// owner.
func TestHealthDataRestricted(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		now := t0.Add(20 * time.Minute)
		rec := func(min int, svc string) *Record {
			in := t0.Add(time.Duration(min) * time.Minute)
			return &Record{Side: "provider", RequestInAt: in, ResponseOutAt: in.Add(time.Millisecond),
				Client: hcmc, Service: svc, Protocol: "r1", Succeeded: true}
		}
		s := xroadStore(t, dsn, now, []*Record{rec(11, registry), rec(12, tax)})
		tenant := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOT", Subsystem: "tax"}
		body, err := s.RenderHealthData(t.Context(), HealthDataRequest{}, XRoadOptions{Now: now, Restrict: tenant})
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("refused with %v, want a request error", err)
			}
			return
		}
		t.Errorf("health data restricted to %s answered, want refused", tenant)
		var got healthResponse
		if err := xml.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		for _, sv := range got.Services {
			if sv.Service.Subsystem != "tax" {
				t.Errorf("health data restricted to %s lists %s/%s's service %s", tenant, sv.Service.Code, sv.Service.Subsystem, sv.Service.Service)
			}
		}
	})
}
