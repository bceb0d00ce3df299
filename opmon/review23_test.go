package opmon

import (
	"encoding/xml"
	"strings"
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

// TestReviewRestrictedQueryPlan: a client of a gateway (not its owner)
// asks getSecurityServerOperationalData for any interval; its records
// are selected with (client = ? OR substr(service, 1, ?) = ?), which no
// index serves, so the store walks every record of the interval (up to
// the whole retention) to find the few of this client, each request, as
// often as the client likes. The party's records should be found by the
// client and service indexes (service >= prefix AND service < prefix
// upper bound, as a UNION of two indexed selects).
func TestReviewRestrictedQueryPlan(t *testing.T) {
	s := xroadStore(t, "", t0.Add(time.Hour), nil)
	q, args, err := query(Filter{From: t0, To: t0.Add(365 * 24 * time.Hour), Party: "VN/GOV/MOT/tax", Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+s.db.Q(q), args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	usesParty := false
	for _, d := range plan {
		if strings.Contains(d, "opmon_records_client") || strings.Contains(d, "opmon_records_service") {
			usesParty = true
		}
	}
	if !usesParty {
		t.Errorf("a restricted monitoring query walks the interval, not the party's records: plan %q", plan)
	}
}
