package opmon

import (
	"encoding/xml"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
)

// TestReviewHealthDataRestricted: the gateway answers
// getSecurityServerHealthData to any client it serves with
// XRoadOptions.Restrict set to that client (not its owner), as it does
// operational data; RenderHealthData ignores Restrict, so a tenant of a
// shared gateway reads the call counts, timings and sizes of every other
// tenant's services. With Restrict set, only the services Restrict
// offers may be listed (or the request refused, as X-Road leaves health
// data to the owner and the monitoring client).
func TestReviewHealthDataRestricted(t *testing.T) {
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
			return // a refusal is a fix too
		}
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
