package opmon

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// serve stores n records (fullRecord(0..n-1), every third one a success)
// and serves them.
func serve(t *testing.T, n int) (*Store, *httptest.Server) {
	t.Helper()
	s := openStore(t, t.TempDir(), "", Options{})
	t.Cleanup(func() { s.Close(t.Context()) })
	for i := range n {
		r := fullRecord(i)
		if i%3 == 0 {
			r.Status, r.Succeeded, r.ErrorType, r.ErrorMessage = 200, true, "", ""
		}
		s.Add(r)
	}
	waitStored(t, s, n)
	srv := httptest.NewServer(Handler(s))
	t.Cleanup(srv.Close)
	return s, srv
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestHandlerJSON: the JSON answer has the records' fields in snake_case,
// times in RFC 3339 and steps in microseconds, and next pages on.
func TestHandlerJSON(t *testing.T) {
	_, srv := serve(t, 5)
	resp, b := get(t, srv.URL+"/records?limit=2&succeeded=false&from="+url.QueryEscape(t0.Format(time.RFC3339)))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: %s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	var page struct {
		Records []map[string]any `json:"records"`
		Next    string           `json:"next"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 || page.Next == "" || resp.Header.Get(NextHeader) != page.Next {
		t.Fatalf("page of %d, next %q (header %q)", len(page.Records), page.Next, resp.Header.Get(NextHeader))
	}
	r := page.Records[0]
	for k, want := range map[string]any{
		"side": "consumer", "x_road_id": "xrid-1", "request_in_at": "2026-12-07T10:00:01Z", "request_out_at": "2026-12-07T10:00:01.0015Z",
		"status": 502.0, "succeeded": false, "error_type": "Server.ServerProxy.ServiceFailed", "request_bytes": float64(1<<40 + 1),
		"represented_party": "VN/COM/123", "peer_gateway": "VN/GOV/MOF/gw1",
	} {
		if r[k] != want {
			t.Errorf("%s = %#v, want %#v", k, r[k], want)
		}
	}
	steps, _ := json.Marshal(r["steps"])
	if string(steps) != `[{"duration_us":3,"name":"limits"},{"duration_us":1000000,"name":"odd=name;100%"},{"duration_us":28000,"name":"send"}]` {
		t.Errorf("steps %s", steps)
	}
	_, b = get(t, srv.URL+"/records?limit=2&succeeded=false&after="+page.Next)
	var next struct {
		Records []map[string]any `json:"records"`
		Next    string           `json:"next"`
	}
	if err := json.Unmarshal(b, &next); err != nil || len(next.Records) != 1 || next.Next != "" || next.Records[0]["x_road_id"] != "xrid-4" {
		t.Fatalf("second page %s (%v)", b, err)
	}
	_, b = get(t, srv.URL+"/records?client=nobody")
	if strings.TrimSpace(string(b)) != `{"records":[],"next":""}` {
		t.Fatalf("no records: %s", b)
	}
}

// TestHandlerCSV: a header row, then a row a record, with the spreadsheet
// formula guard.
func TestHandlerCSV(t *testing.T) {
	s, srv := serve(t, 3)
	r := fullRecord(10)
	r.UserID = "=HYPERLINK(\"x\")"
	s.Add(r)
	waitStored(t, s, 4)
	resp, b := get(t, srv.URL+"/records?format=csv")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || strings.Join(rows[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	col := func(name string) int {
		for i, h := range csvHeader {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return 0
	}
	if got := rows[2][col("error_message")]; got != "backend: connection refused; \"quoted\"\nnewline" {
		t.Errorf("error_message %q", got)
	}
	if got := rows[2][col("steps")]; got != "limits=3;odd%3Dname%3B100%25=1000000;send=28000" {
		t.Errorf("steps %q", got)
	}
	if got := rows[4][col("user_id")]; got != "'=HYPERLINK(\"x\")" {
		t.Errorf("formula cell %q", got)
	}
}

// TestHandlerRefuses: bad parameters and methods are answered with a JSON
// error naming what is wrong.
func TestHandlerRefuses(t *testing.T) {
	_, srv := serve(t, 1)
	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{"from=yesterday", 400, "parameter from"},
		{"to=2026-13-01T00:00:00Z", 400, "parameter to"},
		{"from=2026-12-07T10:00:00Z&to=2026-12-07T09:00:00Z", 400, "parameter to"},
		{"status=abc", 400, "parameter status"},
		{"status=99", 400, "parameter status"},
		{"side=both", 400, "parameter side"},
		{"succeeded=yes", 400, "parameter succeeded"},
		{"limit=0", 400, "parameter limit"},
		{"limit=1001", 400, "parameter limit"},
		{"after=zz", 400, "parameter after"},
		{"format=xml", 400, "parameter format"},
		{"client=a&client=b", 400, "parameter client"},
		{"client=" + strings.Repeat("a", maxValue+1), 400, "parameter client"},
		{"colour=red", 400, "parameter colour"},
		{"x=" + strings.Repeat("a", maxQuery), 400, "query string"},
		{"a=%zz", 400, "query string"},
	} {
		resp, b := get(t, srv.URL+"/records?"+tc.query)
		var e struct{ Error string }
		if resp.StatusCode != tc.status || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%.60s: %s %s, want %d naming %q", tc.query, resp.Status, b, tc.status, tc.want)
		}
	}
	resp, err := http.Post(srv.URL+"/records", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	resp, err = http.Head(srv.URL + "/records")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD: %v %v", resp, err)
	}
	if resp, _ := get(t, srv.URL+"/other"); resp.StatusCode != 404 {
		t.Errorf("/other: %s", resp.Status)
	}
}
