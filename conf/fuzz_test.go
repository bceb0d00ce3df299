package conf

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// testWorld returns a valid configuration, an anchor and a signer for it.
func testWorld(t testing.TB) (*Config, *Anchor, *pki.Signer) {
	t.Helper()
	ca, err := pki.NewCA("VN test CA")
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pki.NewSigner(key, "VN-1")
	if err != nil {
		t.Fatal(err)
	}
	ak, err := NewAnchorKey("VN-1", key.Public())
	if err != nil {
		t.Fatal(err)
	}
	a := &Anchor{FormatVersion: FormatVersion, Instance: "VN", URL: "https://authority.vn.example/conf", Keys: []AnchorKey{ak}, TLSCA: string(pki.EncodeCert(ca.Cert.Raw))}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	reg := mof
	reg.Subsystem = "business-registry"
	now := time.Now().UTC().Truncate(time.Millisecond)
	c := &Config{
		FormatVersion: FormatVersion, Instance: "VN", Serial: 7, GeneratedAt: now, ExpiresAt: now.Add(10 * time.Minute),
		CACerts:      []string{string(pki.EncodeCert(ca.Cert.Raw))},
		Members:      []Member{{ID: mof, Name: "Ministry of Finance", Subsystems: []string{"business-registry"}}},
		Gateways:     []Gateway{{ID: ident.GatewayID{Instance: "VN", Class: "GOV", Code: "MOF", Name: "gw1"}, Address: "127.0.0.1:8443", AuthFP: strings.Repeat("ab", 32), Clients: []ident.ClientID{reg}}},
		GlobalGroups: []GlobalGroup{{ID: ident.GroupID{Instance: "VN", Code: "ministries"}, Members: []ident.ClientID{reg}}},
		Revoked:      []string{"1f"},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c, a, s
}

// FuzzDecode: the parser of shared-configuration documents never panics,
// and what it accepts survives a round trip.
func FuzzDecode(f *testing.F) {
	c, _, _ := testWorld(f)
	good, _ := json.Marshal(c)
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), `"serial":7`, `"serial":0`, 1)))
	f.Add([]byte(strings.Replace(string(good), `"format_version":1`, `"format_version":1,"extra":true`, 1)))
	f.Add([]byte(string(good) + "{}"))
	f.Add([]byte(`{"format_version":1,"instance":"VN"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Decode(again)
		if err != nil {
			t.Fatalf("accepted document does not survive re-encoding: %v", err)
		}
		if c2.Serial != c.Serial || c2.Instance != c.Instance || len(c2.Gateways) != len(c.Gateways) {
			t.Fatalf("round trip changed the document")
		}
	})
}

// FuzzVerify: only documents signed by the anchor's key verify.
func FuzzVerify(f *testing.F) {
	c, a, s := testWorld(f)
	doc, err := Sign(c, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add(doc[:len(doc)-10])
	f.Add([]byte(strings.Replace(string(doc), ".", "..", 1)))
	f.Add([]byte("eyJhbGciOiJub25lIn0.eyJ9.")) // alg none
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Verify(b, a)
		if err != nil {
			return
		}
		if string(b) != string(doc) && !strings.Contains(string(b), string(doc[:strings.LastIndexByte(string(doc), '.')])) {
			t.Fatalf("a document not signed by the anchor's key verified")
		}
		if got.Serial != c.Serial {
			t.Fatalf("verified document has serial %d", got.Serial)
		}
	})
}

func TestVerifyRefusesOtherKeysAndTampering(t *testing.T) {
	c, a, s := testWorld(t)
	doc, err := Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(doc, a); err != nil {
		t.Fatalf("good document: %v", err)
	}
	otherKey, _ := pki.GenerateKey(pki.Ed25519)
	other, _ := pki.NewSigner(otherKey, "VN-1")
	forged, _ := Sign(c, other)
	parts := strings.Split(string(doc), ".")
	payload := []byte(parts[1])
	payload[10] ^= 1
	tampered := parts[0] + "." + string(payload) + "." + parts[2]
	for name, d := range map[string][]byte{"other key": forged, "tampered": []byte(tampered), "empty": nil} {
		if _, err := Verify(d, a); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: err = %v, want ErrUntrusted", name, err)
		}
	}
}

func TestAccept(t *testing.T) {
	c, _, _ := testWorld(t)
	older := *c
	older.Serial = c.Serial - 1
	newer := *c
	newer.Serial = c.Serial + 1
	docA, docB := []byte("a"), []byte("b")
	for _, tc := range []struct {
		name       string
		next       *Config
		curDoc     []byte
		nextDoc    []byte
		wantAccept bool
	}{
		{"older serial", &older, docA, docB, false},
		{"same serial, other document", c, docA, docB, false},
		{"same document", c, docA, docA, true},
		{"newer serial", &newer, docA, docB, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Accept(c, tc.next, tc.curDoc, tc.nextDoc)
			if (err == nil) != tc.wantAccept {
				t.Errorf("Accept = %v, want accept %v", err, tc.wantAccept)
			}
		})
	}
	if err := Accept(nil, c, nil, docA); err != nil {
		t.Errorf("first configuration refused: %v", err)
	}
}
