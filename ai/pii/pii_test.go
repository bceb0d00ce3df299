package pii

import (
	"reflect"
	"testing"
)

func TestNRICCheckLetter(t *testing.T) {
	// Hand-computed: digits 1234567 weigh 2+14+18+20+20+18+14 = 106.
	tests := []struct {
		id   string
		want bool
	}{
		{"S1234567D", true},  // 106 mod 11 = 7 → JZIHGFEDCBA[7] = D
		{"T1234567J", true},  // 110 mod 11 = 0 → J
		{"F1234567N", true},  // 106 mod 11 = 7 → XWUTRQPNMLK[7] = N
		{"G1234567X", true},  // 110 mod 11 = 0 → X
		{"M1234567K", true},  // 109 mod 11 = 10 → XWUTRQPNJLK[10] = K
		{"S0000001I", true},  // 2 → I
		{"T0000001E", true},  // 6 → E
		{"M0001000J", true},  // 5+3 = 8 → J (where F/G has M)
		{"F0000004M", true},  // 8 → M
		{"s1234567d", true},  // either case
		{"S1234567A", false}, // wrong check letter
		{"T1234567D", false}, // S's letter under T's offset
		{"F1234567D", false}, // S table used for F
		{"M1234567X", false}, // F/G letter for 10 is K too; X is wrong
		{"M0001000M", false}, // the F/G letter, not M's
		{"G1234567N", false},
		{"A1234567D", false}, // unknown series
		{"S123456D", false},  // too short
		{"S12345a7D", false},
	}
	for _, tt := range tests {
		if got := ValidNRIC(tt.id); got != tt.want {
			t.Errorf("ValidNRIC(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestParseCitizenID(t *testing.T) {
	tests := []struct {
		id   string
		ok   bool
		want CitizenID
	}{
		{"079203001234", true, CitizenID{Province: "079", BirthYear: 2003, Serial: "001234"}},
		{"001185012345", true, CitizenID{Province: "001", Female: true, BirthYear: 1985, Serial: "012345"}},
		{"096399000001", true, CitizenID{Province: "096", Female: true, BirthYear: 2099, Serial: "000001"}},
		{"003185012345", false, CitizenID{}}, // 003 is no province code
		{"097185012345", false, CitizenID{}}, // beyond the last code
		{"079403001234", false, CitizenID{}}, // century digit 4: born in the 2100s
		{"079903001234", false, CitizenID{}},
		{"07920300123", false, CitizenID{}},
		{"07920300123x", false, CitizenID{}},
	}
	for _, tt := range tests {
		got, ok := ParseCitizenID(tt.id)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseCitizenID(%q) = %+v, %v; want %+v, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
	if len(vnProvinceCodes) != 63 {
		t.Errorf("%d province codes, want 63", len(vnProvinceCodes))
	}
}

func TestFind(t *testing.T) {
	type f struct {
		Kind Kind
		Text string
	}
	tests := []struct {
		name string
		text string
		want []f
	}{
		{"citizen id", "Số CCCD của ông là 079203001234.", []f{{VNCitizenID, "079203001234"}}},
		{"citizen id bad province", "mã 003203001234", nil},
		{"citizen id inside longer number", "0792030012345", nil},
		{"citizen id after letters", "ref A079203001234", nil},
		{"nric", "NRIC S1234567D, FIN M1234567K", []f{{SGNRIC, "S1234567D"}, {SGNRIC, "M1234567K"}}},
		{"nric wrong letter", "NRIC S1234567A", nil},
		{"nric inside word", "XS1234567D", nil},
		{"vn mobile", "Gọi 0912 345 678 hoặc +84 983.456.789", []f{{VNPhone, "0912 345 678"}, {VNPhone, "+84 983.456.789"}}},
		{"vn mobile plain", "sdt:0387654321", []f{{VNPhone, "0387654321"}}},
		{"vn landline prefix", "0243 826 1234", nil}, // 024 is Hà Nội's area code, not a mobile prefix
		{"vn unknown prefix", "0312345678", nil},     // 031 is no mobile prefix
		{"vn too long", "09123456789", nil},
		{"sg phone", "call +65 9123 4567 or +65-6123-4567", []f{{SGPhone, "+65 9123 4567"}, {SGPhone, "+65-6123-4567"}}},
		{"sg bad first digit", "+65 5123 4567", nil},
		{"sg too long", "+65 912345678", nil},
		{"email", "viết cho lan.nguyen@example.gov.vn nhé", []f{{Email, "lan.nguyen@example.gov.vn"}}},
		{"email bad local", "a..b@example.com .x@example.com", nil},
		{"email no tld", "root@localhost", nil},
		{"mixed", "S1234567D lan@x.sg 079203001234 +6581234567",
			[]f{{SGNRIC, "S1234567D"}, {Email, "lan@x.sg"}, {VNCitizenID, "079203001234"}, {SGPhone, "+6581234567"}}},
		{"nothing", "Không có thông tin cá nhân nào ở đây. 12345", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []f
			for _, x := range Find(tt.text) {
				if tt.text[x.Start:x.End] != x.Text {
					t.Fatalf("span %d:%d is %q, Text %q", x.Start, x.End, tt.text[x.Start:x.End], x.Text)
				}
				got = append(got, f{x.Kind, x.Text})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Find(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestScannerYear(t *testing.T) {
	// Born 2030: reported without a bound, not in 2026.
	if n := len(Find("079230001234")); n != 1 {
		t.Fatalf("zero Scanner: %d findings, want 1", n)
	}
	if n := len((Scanner{Year: 2026}).Find("079230001234")); n != 0 {
		t.Fatalf("Year 2026: %d findings, want 0", n)
	}
}

// FuzzFind: any text gives findings whose spans lie in the text, hold
// their Text, are ordered, and validate as their kind.
func FuzzFind(f *testing.F) {
	for _, s := range []string{"079203001234", "S1234567D", "+84 912 345 678", "+65 9123 4567",
		"a@b.co", "M1234567K lan@x.sg 0912345678", "", "\xff\xfe0912.345.678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prev := -1
		for _, x := range Find(s) {
			if x.Start < 0 || x.End > len(s) || x.Start >= x.End || s[x.Start:x.End] != x.Text {
				t.Fatalf("bad span %+v in %q", x, s)
			}
			if x.Start < prev {
				t.Fatalf("findings out of order in %q", s)
			}
			prev = x.Start
			switch x.Kind {
			case VNCitizenID:
				if !ValidCitizenID(x.Text) {
					t.Fatalf("invalid citizen id reported: %q", x.Text)
				}
			case SGNRIC:
				if !ValidNRIC(x.Text) {
					t.Fatalf("invalid NRIC reported: %q", x.Text)
				}
			}
		}
	})
}
