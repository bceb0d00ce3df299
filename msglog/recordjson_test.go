package msglog

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestRecordJSONMatchesEncodingJSON fills every field of records (by
// reflection, so that a field added later is filled too) with awkward
// values and checks that the record's own encoder writes what
// encoding/json writes, byte for byte, and refuses what it refuses;
// but for invalid UTF-8, which the record format writes as \ufffd, as
// encoding/json did up to Go 1.26 (from 1.27 it writes U+FFFD itself):
// a new toolchain does not change the bytes that the log hashes.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	twin := rand.New(rand.NewPCG(1, 2)) // the same records again, to mark
	refused := 0
	for i := range 3000 {
		var r, marked Record
		fill(rng, reflect.ValueOf(&r).Elem())
		fill(twin, reflect.ValueOf(&marked).Elem())
		markInvalidUTF8(reflect.ValueOf(&marked).Elem())
		want, werr := json.Marshal(&marked)
		want = bytes.ReplaceAll(want, []byte(invalidMark), []byte(`\ufffd`))
		got, ok := r.appendJSON(nil)
		if ok != (werr == nil) {
			t.Fatalf("record %d: encoder ok=%v, encoding/json err=%v\n%#v", i, ok, werr, r)
		}
		if !ok {
			refused++
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d differs:\n got %s\nwant %s", i, got, want)
		}
	}
	if refused == 0 || refused > 1500 {
		t.Fatalf("%d of 3000 records refused: the generator should make a few", refused)
	}
}

// TestRecordJSONTimeBoundaries: times at the edges of what encoding/json
// accepts (years 0 and 9999, zones up to a second short of 24 hours from
// UTC) are written as it writes them, and those just past are refused.
func TestRecordJSONTimeBoundaries(t *testing.T) {
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), true},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600-1)), true},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -(24*3600-1))), true},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)), false},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -24*3600)), false},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 30)), true},
	} {
		r := benchRecord()
		r.ResponseAt = tc.at
		want, werr := json.Marshal(r)
		got, ok := r.appendJSON(nil)
		if (werr == nil) != tc.ok || ok != tc.ok {
			t.Errorf("%v: encoder ok=%v, encoding/json err=%v, want accepted=%v", tc.at, ok, werr, tc.ok)
			continue
		}
		if ok && !bytes.Equal(got, want) {
			t.Errorf("%v:\n got %s\nwant %s", tc.at, got, want)
		}
	}
}

// TestMarshalRefusesBadTime: a record encoding/json cannot encode is
// refused with its reason.
func TestMarshalRefusesBadTime(t *testing.T) {
	r := benchRecord()
	r.RequestAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := r.marshal(); err == nil || !strings.Contains(err.Error(), "year") {
		t.Fatalf("marshal of a year-10000 record: %v, want encoding/json's error about the year", err)
	}
}

// invalidMark stands for an invalid byte in the reference encoding: a
// private-use character that awkward does not hold and encoding/json
// writes as it is.
const invalidMark = "\ue000"

// markInvalidUTF8 replaces each byte of v's strings that is not valid
// UTF-8 with invalidMark, as encoding/json replaces each with U+FFFD.
func markInvalidUTF8(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		var b strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteString(invalidMark)
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
		}
		v.SetString(b.String())
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			markInvalidUTF8(v.Index(i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			markInvalidUTF8(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			markInvalidUTF8(v.Field(i))
		}
	}
}

var awkward = []string{"a", "Z", "0", " ", "\"", "\\", "<", ">", "&", "\x00", "\x01", "\b", "\f", "\n", "\r", "\t", "\x1f", "\x7f",
	"é", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x80", "😀", "\ufffd", "/", "'", "+"}

func fill(rng *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if rng.IntN(5) == 0 {
			return
		}
		var s strings.Builder
		for range rng.IntN(12) {
			s.WriteString(awkward[rng.IntN(len(awkward))])
		}
		v.SetString(s.String())
	case reflect.Int, reflect.Int64:
		if rng.IntN(4) > 0 {
			v.SetInt(rng.Int64N(1<<40) - 1<<39)
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Slice:
		switch rng.IntN(3) {
		case 0: // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + rng.IntN(3)
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				fill(rng, s.Index(i))
			}
			v.Set(s)
		}
	case reflect.Pointer:
		if rng.IntN(3) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(rng, p.Elem())
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(randTime(rng)))
			return
		}
		for i := range v.NumField() {
			fill(rng, v.Field(i))
		}
	default:
		panic("fill: no generator for " + v.Type().String())
	}
}

func randTime(rng *rand.Rand) time.Time {
	zones := []*time.Location{time.UTC, time.FixedZone("", 7*3600), time.FixedZone("", -(3*3600 + 1800)),
		time.FixedZone("", 3600+30),  // seconds in the offset: cut to minutes
		time.FixedZone("", -25*3600)} // the last is refused
	switch rng.IntN(40) {
	case 0:
		return time.Time{}
	case 1:
		return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // refused
	}
	t := time.Unix(rng.Int64N(4e9), 0).Add(time.Duration(rng.IntN(4)) * time.Duration(rng.Int64N(1e9)))
	if rng.IntN(3) == 0 {
		t = t.Truncate(time.Millisecond)
	}
	z := zones[rng.IntN(len(zones)-1)]
	if rng.IntN(30) == 0 {
		z = zones[len(zones)-1]
	}
	return t.In(z)
}

func BenchmarkRecordMarshal(b *testing.B) {
	r := benchRecord()
	b.Run("encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.marshal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) { // what marshal did before
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Validate(); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchRecord is a record as a gateway writes one for a small exchange.
func benchRecord() *Record {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	h := strings.Repeat("ab", 32)
	return &Record{Side: "provider", Gateway: "SAMPAN-VN/GOV/MOF/gw1", PeerGateway: "SAMPAN-VN/GOV/MOH/gw1",
		XRoadID: "0193f7a2-1c3d-7e4f-8a9b-0c1d2e3f4a5b", RequestID: "0193f7a2-1c3d-7e4f-8a9b-0c1d2e3f4a5c",
		Client: "SAMPAN-VN/GOV/MOH/clinics", Service: "SAMPAN-VN/GOV/MOF/tax/status", Method: "POST", Path: "/status",
		RequestAt: at, ResponseAt: at.Add(3 * time.Millisecond), Status: 200,
		RequestHeadSHA256: h, RequestBodySHA256: h, RequestBytes: 1024, ResponseHeadSHA256: h, ResponseBodySHA256: h, ResponseBytes: 1024,
		RequestHash: h, RequestSignature: strings.Repeat("Qk", 44), RequestSignerCert: h,
		ResponseSignature: strings.Repeat("Qk", 44), ResponseSignerCert: h,
		Decision: &Decision{Allow: true, Rules: []string{"agreement-tax-status"}, Agreement: "AGR-2026-001", PolicyVersion: "v3",
			DataClass: "personal", CrossBorder: false, Purpose: "eligibility check", LegalBasis: "Decree 13/2023"}}
}
