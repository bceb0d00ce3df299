package ident

import (
	"errors"
	"testing"
)

func TestParseClient(t *testing.T) {
	tests := []struct {
		in      string
		want    ClientID
		wantErr bool
	}{
		{"VN/GOV/MOF", ClientID{"VN", "GOV", "MOF", ""}, false},
		{"VN/GOV/MOF/business-registry", ClientID{"VN", "GOV", "MOF", "business-registry"}, false},
		{"VN-test/COM/0101/x.y_z", ClientID{"VN-test", "COM", "0101", "x.y_z"}, false},
		{"VN/GOV", ClientID{}, true},
		{"VN/GOV/MOF/a/b", ClientID{}, true},
		{"vn/GOV/MOF", ClientID{}, true},
		{"VNM/GOV/MOF", ClientID{}, true},
		{"VN//MOF", ClientID{}, true},
		{"VN/GOV/M;F", ClientID{}, true},
		{"VN/GOV/M F", ClientID{}, true},
		{"VN/GOV/M\x00F", ClientID{}, true},
		{"VN/GOV/M%20F", ClientID{}, true},
		{"VN/GOV/\xff", ClientID{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseClient(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseClient(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestEscapedRoundTrip(t *testing.T) {
	c := ClientID{"VN", "GOV", "MOF", "đăng ký?#"}
	if err := c.Validate(); err == nil {
		t.Fatal("space must be refused")
	}
	c.Subsystem = "đăng-ký?#"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	esc := c.Escaped()
	if esc != "VN/GOV/MOF/%C4%91%C4%83ng-k%C3%BD%3F%23" {
		t.Fatalf("Escaped() = %q", esc)
	}
	got, err := ParseEscapedClient(esc)
	if err != nil || got != c {
		t.Fatalf("ParseEscapedClient(%q) = %+v, %v; want %+v", esc, got, err, c)
	}
	if _, err := ParseEscapedClient("VN/GOV/MOF/%zz"); err == nil {
		t.Error("bad percent-encoding accepted")
	}
	if _, err := ParseEscapedClient("VN/GOV/MOF/a%2Fb"); err == nil {
		t.Error("encoded slash accepted")
	}
}

func TestParseService(t *testing.T) {
	s, err := ParseService("VN/GOV/MOF/business-registry/companies")
	if err != nil {
		t.Fatal(err)
	}
	if s.Provider.Subsystem != "business-registry" || s.Code != "companies" || s.Version != "" {
		t.Errorf("got %+v", s)
	}
	s, err = ParseService("VN/GOV/MOF/business-registry/companies/v2")
	if err != nil || s.Version != "v2" || s.String() != "VN/GOV/MOF/business-registry/companies/v2" {
		t.Errorf("got %+v, %v", s, err)
	}
	for _, bad := range []string{"VN/GOV/MOF/companies", "VN/GOV/MOF/a/b/c/d", "VN/GOV/MOF/a/:x"} {
		if _, err := ParseService(bad); err == nil {
			t.Errorf("ParseService(%q) accepted", bad)
		}
	}
}

func TestGatewayAndGroup(t *testing.T) {
	g, err := ParseGateway("VN/GOV/MOF/gw1")
	if err != nil || g.Owner() != (ClientID{"VN", "GOV", "MOF", ""}) || g.String() != "VN/GOV/MOF/gw1" {
		t.Fatalf("got %+v, %v", g, err)
	}
	if _, err := ParseGateway("VN/GOV/MOF"); err == nil {
		t.Error("3-part gateway accepted")
	}
	gr, err := ParseGroup("VN/provinces")
	if err != nil || gr.String() != "VN/provinces" {
		t.Fatalf("got %+v, %v", gr, err)
	}
	if _, err := ParseGroup("provinces"); err == nil {
		t.Error("1-part group accepted")
	}
}

func TestTextMarshal(t *testing.T) {
	var c ClientID
	if err := c.UnmarshalText([]byte("VN/GOV/HCMC/one-stop")); err != nil {
		t.Fatal(err)
	}
	b, _ := c.MarshalText()
	if string(b) != "VN/GOV/HCMC/one-stop" {
		t.Errorf("MarshalText = %q", b)
	}
	if err := c.UnmarshalText([]byte("nope")); err == nil {
		t.Error("UnmarshalText accepted garbage")
	}
}

func FuzzParseEscapedClient(f *testing.F) {
	for _, s := range []string{"VN/GOV/MOF", "VN/GOV/MOF/business-registry", "SG/GOV/ACRA/bizfile", "VN/GOV/MOF/%C4%91", "VN/GOV/%zz/a", "a/b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseEscapedClient(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate fails: %v", s, err)
		}
		back, err := ParseEscapedClient(c.Escaped())
		if err != nil || back != c {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, back, err, c)
		}
		plain, err := ParseClient(c.String())
		if err != nil || plain != c {
			t.Fatalf("plain round trip of %q: %+v, %v", s, plain, err)
		}
	})
}

func FuzzParseService(f *testing.F) {
	for _, s := range []string{"VN/GOV/MOF/business-registry/companies", "VN/GOV/MOF/x/y/v1", "VN/GOV/MOF/x", "//////", "AA/0/0/0/0/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseService(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("String() = %q, want %q", id.String(), s)
		}
	})
}

func TestValidateCanonical(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"business-registry", true},
		{"gw1", true},
		{"VN-test", true},
		{"a.b_c-1", true},
		{".", false},
		{"..", false},
		{"", false},
		{"MOF\u0130", false},          // dotted capital I
		{"M\u041eF", false},           // Cyrillic O
		{"\uff2d\uff2f\uff26", false}, // full-width MOF
		{"a b", false},
		{"a~b", false},
		{"a@b", false},
		{"caf\u00e9", false},
		{"a\u200bb", false}, // zero-width space
		{"a/b", false},
	} {
		err := ValidateCanonical("part", tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateCanonical(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateCanonical(%q): %v does not wrap ErrInvalid", tc.in, err)
		}
	}
	if err := (ClientID{"VN", "GOV", "MOF", ""}).ValidateCanonical(); err != nil {
		t.Errorf("member: %v", err)
	}
	if err := (ClientID{"VN", "GOV", "MOF", ".."}).ValidateCanonical(); err == nil {
		t.Error("subsystem \"..\" accepted")
	}
	if err := (GatewayID{"VN", "GOV", "M\u041eF", "gw1"}).ValidateCanonical(); err == nil {
		t.Error("gateway with a Cyrillic letter accepted")
	}
	if err := (GroupID{"VN", "\uff50rovinces"}).ValidateCanonical(); err == nil {
		t.Error("group with a full-width letter accepted")
	}
	if Fold("VN/GOV/MOF/GW1") != Fold("VN/GOV/mof/gw1") {
		t.Error("Fold differs for identifiers differing only in case")
	}
}
