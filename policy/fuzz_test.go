package policy

import (
	"encoding/json"
	"testing"
)

// FuzzDocument feeds arbitrary policy documents through decoding and
// compilation: either the document is refused with an error, or it
// compiles and every decision on it is made without panicking, refuses
// with a message and rules, and is the same when made twice.
func FuzzDocument(f *testing.F) {
	vn, _ := National("VN")
	sg, _ := National("SG")
	for _, d := range []*Document{
		{Services: vnServices(), Agreements: agreementIn("active"), Rules: vn},
		{Services: vnServices(), Agreements: agreementIn("suspended"), Rules: sg},
		{Suspensions: []Suspension{{ID: "s", When: When{Flow: "any", Flags: []string{FlagCore}}, Reason: "r"}}},
	} {
		b, _ := json.Marshal(d)
		f.Add(b)
	}
	f.Add([]byte(`{"rules":[{"id":"x","applies_at":"both","when":{"flow":"any"},"effect":"deny"}]}`))
	f.Add([]byte(`{"rules":[{"id":"x\"; permit(principal,action,resource) when {true","applies_at":"both","when":{"flow":"any"},"effect":"deny"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDocument(b)
		if err != nil {
			return
		}
		e, err := Compile("VN", "1", d)
		if err != nil {
			return
		}
		for _, side := range []string{SideProvider, SideConsumer} {
			for _, client := range []string{"VN/GOV/HCMC/one-stop", "SG/GOV/SPF/anti-scam"} {
				for _, s := range []string{persons.String(), scam.String(), companies.String()} {
					c, sv := sub(client), svc(s)
					d1 := decide(e, e, side, c, sv, "p-ok")
					d2 := decide(e, e, side, c, sv, "p-ok")
					if d1.Allow != d2.Allow || d1.Message != d2.Message {
						t.Fatalf("two decisions differ: %+v / %+v", d1, d2)
					}
					if !d1.Allow && (d1.Message == "" || len(d1.Rules) == 0) {
						t.Fatalf("a refusal without rules or message: %+v", d1)
					}
				}
			}
		}
	})
}
