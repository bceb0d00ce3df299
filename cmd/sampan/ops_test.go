package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/opmon"
)

// TestOpsRecordsCommand runs the command against a real store served over
// HTTP behind a bearer token: it pages through every record with --all, in
// JSON and CSV, passes the filters on, and says clearly what the server
// refused.
func TestOpsRecordsCommand(t *testing.T) {
	dir := t.TempDir()
	s, err := opmon.Open(t.Context(), opmon.Options{SQLitePath: filepath.Join(dir, "opmon.db")})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 7 {
		s.Add(&opmon.Record{Side: "provider", RequestInAt: at.Add(time.Duration(i) * time.Second), Client: "VN/GOV/HCMC/one-stop",
			Service: fmt.Sprintf("VN/GOV/MOF/s%d", i%2), XRoadID: fmt.Sprintf("x%d", i), Status: 200, Succeeded: true, Protocol: "r1"})
	}
	if err := s.Close(t.Context()); err != nil { // stores them
		t.Fatal(err)
	}
	s, err = opmon.Open(t.Context(), opmon.Options{SQLitePath: filepath.Join(dir, "opmon.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	const token = "ops-token"
	h := opmon.Handler(s)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)

	run := func(c OpsRecordsCmd) (string, error) {
		c.URL, c.TokenFile = srv.URL+"/", tokenFile
		if c.Limit == 0 {
			c.Limit = 100
		}
		if c.Format == "" {
			c.Format = "json"
		}
		var out strings.Builder
		err := c.run(t.Context(), &out)
		return out.String(), err
	}

	out, err := run(OpsRecordsCmd{Limit: 2, All: true})
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Records []struct {
			ID      int64  `json:"id"`
			XRoadID string `json:"x_road_id"`
		} `json:"records"`
		Next string `json:"next"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []string
	for _, r := range page.Records {
		got = append(got, r.XRoadID)
	}
	if strings.Join(got, ",") != "x0,x1,x2,x3,x4,x5,x6" {
		t.Fatalf("--all in pages of 2: %v", got)
	}

	out, err = run(OpsRecordsCmd{Limit: 3, All: true, Format: "csv", Service: "VN/GOV/MOF/s1", From: at.Add(2 * time.Second).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 3 || rows[0][0] != "id" || rows[1][10] != "x3" || rows[2][10] != "x5" {
		t.Fatalf("csv for service s1 from x2 on:\n%s", out)
	}

	out, err = run(OpsRecordsCmd{Limit: 2})
	if err != nil || !strings.Contains(out, `"x_road_id":"x1"`) || strings.Contains(out, `"x2"`) || !strings.Contains(out, `"next":"`) {
		t.Fatalf("one page: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		c    OpsRecordsCmd
		want string
	}{
		{OpsRecordsCmd{Status: 42}, "400 Bad Request: parameter status"},
		{OpsRecordsCmd{Side: "both"}, "parameter side"},
		{OpsRecordsCmd{From: "yesterday"}, "--from"},
	} {
		if _, err := run(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", tc.c, err, tc.want)
		}
	}
	os.WriteFile(tokenFile, []byte("wrong"), 0o600)
	if _, err := run(OpsRecordsCmd{}); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("wrong token: %v", err)
	}
	if err := (&OpsRecordsCmd{URL: "ftp://x", Limit: 1, Format: "json"}).run(t.Context(), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "--url") {
		t.Errorf("ftp URL: %v", err)
	}
}
