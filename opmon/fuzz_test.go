package opmon

import (
	"net/url"
	"reflect"
	"testing"
	"time"
)

// FuzzParseFilter: any query string is either refused or gives a filter
// Query accepts.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		"", "from=2026-12-07T10:00:00Z&to=2026-12-08T10:00:00.5%2B07:00", "client=VN/GOV/HCMC/one-stop&side=consumer",
		"status=404&succeeded=false&limit=1000&format=csv", "after=" + cursor{at: 1, id: 2}.String(), "error_type=Server.X&error_type=y",
		"a=%zz", "limit=-1", "from=2026-12-07T10:00:00Z&to=2026-12-06T10:00:00Z",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, q string) {
		fl, format, err := parseFilter(&url.URL{RawQuery: q})
		if err != nil {
			return
		}
		if format != "json" && format != "csv" {
			t.Fatalf("format %q", format)
		}
		if _, _, err := query(fl); err != nil && fl.Limit != 0 {
			t.Fatalf("%q: parsed, then refused by the query: %v", q, err)
		}
	})
}

// FuzzReadDetail: a damaged detail is refused, never a panic, and what
// reads back packs to the same bytes.
func FuzzReadDetail(f *testing.F) {
	in := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixMicro()
	f.Add(appendDetail(nil, fullRecord(1), in))
	f.Add(appendDetail(nil, &Record{}, in))
	f.Add([]byte{detailVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if readDetail(&r, b, in) != nil {
			return
		}
		again := appendDetail(nil, &r, in)
		var r2 Record
		if err := readDetail(&r2, again, in); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("%x read back packs to %x, which reads as %+v (%v), not %+v", b, again, r2, err, r)
		}
	})
}
