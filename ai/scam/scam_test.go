package scam

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ai/score"
)

func split(t *testing.T) (train, test []Message) {
	t.Helper()
	ms, err := Dataset()
	if err != nil {
		t.Fatal(err)
	}
	return Split(ms)
}

// vietnamese returns the Vietnamese messages, stripped of diacritics if
// strip.
func vietnamese(ms []Message, strip bool) []Message {
	var out []Message
	for _, m := range ms {
		if m.Lang == "vi" {
			if strip {
				m.Text = score.StripDiacritics(m.Text)
			}
			out = append(out, m)
		}
	}
	return out
}

func TestDataset(t *testing.T) {
	ms, err := Dataset()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 400 {
		t.Fatalf("%d messages, want at least 400", len(ms))
	}
	n := map[string]int{}
	seen := map[string]bool{}
	for _, m := range ms {
		n[m.Label]++
		n[m.Lang+"/"+m.Label]++
		if seen[m.Text] {
			t.Errorf("duplicate message %q", m.Text)
		}
		seen[m.Text] = true
	}
	if s := float64(n[Scam]) / float64(len(ms)); s < 0.45 || s > 0.55 {
		t.Errorf("scam share %.2f, want balanced (0.45–0.55)", s)
	}
	for _, k := range []string{"vi/scam", "vi/legit", "en/scam", "en/legit"} {
		if n[k] < 100 {
			t.Errorf("%s: %d messages, want at least 100", k, n[k])
		}
	}
	accented := 0
	for _, m := range vietnamese(ms, false) {
		if score.StripDiacritics(m.Text) != m.Text {
			accented++
		}
	}
	if accented != n["vi/scam"]+n["vi/legit"] {
		t.Errorf("%d of %d Vietnamese messages carry diacritics, want all", accented, n["vi/scam"]+n["vi/legit"])
	}
}

func TestSplit(t *testing.T) {
	train, test := split(t)
	groups := map[string]bool{}
	for _, m := range train {
		groups[m.Group] = true
	}
	for _, m := range test {
		if groups[m.Group] {
			t.Fatalf("group %s is on both sides of the split", m.Group)
		}
	}
	share := float64(len(test)) / float64(len(train)+len(test))
	if share < 0.1 || share > 0.3 {
		t.Errorf("test share %.2f, want about a fifth", share)
	}
	var labels = map[string]int{}
	for _, m := range test {
		labels[m.Lang+"/"+m.Label]++
	}
	if len(labels) != 4 {
		t.Errorf("test part lacks a language or label: %v", labels)
	}
}

// The accuracy floors below are measured values rounded down; the
// measurement is deterministic, so a change that lowers them is a
// change in the model or the data, not noise.
func TestAccuracy(t *testing.T) {
	train, test := split(t)
	v1, err := Train(V1, train)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Train(V2, train)
	if err != nil {
		t.Fatal(err)
	}
	acc1, acc2 := v1.Accuracy(test), v2.Accuracy(test)
	vi1, vi1s := v1.Accuracy(vietnamese(test, false)), v1.Accuracy(vietnamese(test, true))
	vi2, vi2s := v2.Accuracy(vietnamese(test, false)), v2.Accuracy(vietnamese(test, true))
	t.Logf("train %d messages, test %d (groups held out)", len(train), len(test))
	t.Logf("%s: held-out accuracy %.3f; Vietnamese %.3f, Vietnamese without diacritics %.3f", V1, acc1, vi1, vi1s)
	t.Logf("%s: held-out accuracy %.3f; Vietnamese %.3f, Vietnamese without diacritics %.3f", V2, acc2, vi2, vi2s)
	for _, a := range []float64{acc1, acc2} {
		if a < 0.80 {
			t.Errorf("held-out accuracy %.3f below the floor 0.80", a)
		}
	}
	// V1 never saw Vietnamese without diacritics: it drops.
	if vi1-vi1s < 0.10 {
		t.Errorf("%s: stripping diacritics moved accuracy from %.3f to %.3f, want a drop of at least 0.10", V1, vi1, vi1s)
	}
	// V2 was trained on stripped copies: it recovers.
	if vi2s < vi2-0.02 || vi2s-vi1s < 0.10 {
		t.Errorf("%s: %.3f without diacritics (%.3f with; V1 %.3f), want it back within 0.02", V2, vi2s, vi2, vi1s)
	}
}

func TestTrainingDeterministic(t *testing.T) {
	train, _ := split(t)
	a, err := Train(V2, train)
	if err != nil {
		t.Fatal(err)
	}
	shuffled := append([]Message(nil), train...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, _ := Train(V2, shuffled)
	if a.Digest() != b.Digest() || len(a.Digest()) != 64 {
		t.Errorf("digests %s and %s differ for the same messages", a.Digest(), b.Digest())
	}
	c, _ := Train(V1, train)
	if c.Digest() == a.Digest() {
		t.Error("V1 and V2 have the same digest")
	}
	if _, err := Train("scam-nb-v9", train); err == nil {
		t.Error("an unknown version trained")
	}
}

func TestSaveLoad(t *testing.T) {
	train, test := split(t)
	m, _ := Train(V1, train)
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(bytes.NewReader(b), m.Digest())
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != V1 || got.Accuracy(test) != m.Accuracy(test) {
		t.Errorf("loaded model differs: %s, %.3f", got.Version, got.Accuracy(test))
	}
	tampered := bytes.Replace(b, []byte(`"w:otp":[`), []byte(`"w:otp":[9`), 1)
	if bytes.Equal(tampered, b) {
		t.Fatal("test did not tamper")
	}
	if _, err := Load(bytes.NewReader(tampered), m.Digest()); err == nil {
		t.Error("a tampered model loaded against the original digest")
	}
	for _, bad := range []string{
		`{"version":"scam-nb-v9","alpha":1,"docs":[1,1],"counts":{}}`,
		`{"version":"scam-nb-v1","alpha":0,"docs":[1,1],"counts":{}}`,
		`{"version":"scam-nb-v1","alpha":1,"docs":[1,1],"counts":{"w:x":[-1,0]}}`,
		`{"version":"scam-nb-v1","alpha":1,"docs":[1,1],"counts":{},"extra":1}`,
	} {
		if _, err := Load(strings.NewReader(bad), ""); err == nil {
			t.Errorf("loaded %s", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	train, _ := split(t)
	m, _ := Train(V2, train)
	for _, tt := range []struct{ text, want string }{
		{"Tài khoản của bạn bị khóa, xác thực ngay tại http://abc.top và nhập mã OTP", Scam},
		{"Tai khoan cua ban bi khoa, xac thuc ngay tai http://abc.top va nhap ma OTP", Scam},
		{"Tối nay con về ăn cơm với bố mẹ nhé", Legit},
		{"Your account is locked, verify now at http://abc.top and enter the OTP", Scam},
		{"See you at the meeting room at 3pm, bring the slides", Legit},
	} {
		if got, p := m.Classify(tt.text); got != tt.want || (p >= 0.5) != (tt.want == Scam) {
			t.Errorf("Classify(%q) = %s (p %.2f), want %s", tt.text, got, p, tt.want)
		}
	}
}

func TestFeatures(t *testing.T) {
	got := strings.Join(Features("Chuyển 500k!"), "|")
	want := "w:chuyển|c:^ch|c:chu|c:huy|c:uyể|c:yển|c:ển$|w:000k|b:chuyển 000k|c:^00|c:000|c:00k|c:0k$"
	if got != want {
		t.Errorf("Features = %s\nwant %s", got, want)
	}
}

func TestReadMessages(t *testing.T) {
	for _, tt := range []struct{ in, err string }{
		{`{"text":"x","label":"scam","lang":"vi","group":"g"}` + "\n\n", ""},
		{`{"text":"x","label":"spam","lang":"vi","group":"g"}`, "line 1: label"},
		{"\n" + `{"text":" ","label":"scam","lang":"vi","group":"g"}`, "line 2: text is empty"},
		{`{"text":"x","label":"scam","lang":"fr","group":"g"}`, "line 1: lang"},
		{`{"text":"x","label":"scam","lang":"vi","group":"g","note":1}`, "line 1: json: unknown field"},
		{`{"text":"x","label":"scam","lang":"vi","group":"g"} {}`, "line 1: data after"},
		{``, "no messages"},
	} {
		_, err := ReadMessages(strings.NewReader(tt.in))
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ReadMessages(%q) = %v, want %q", tt.in, err, tt.err)
		}
	}
}

// FuzzReadMessages: any bytes either read as messages that each carry a
// known label and language and non-empty text, or are refused.
func FuzzReadMessages(f *testing.F) {
	f.Add([]byte(`{"text":"x","label":"scam","lang":"vi","group":"g"}` + "\n"))
	f.Add([]byte(`{"text":"Chào","label":"legit","lang":"en","group":""}` + "\n\n" + `{"text":"y","label":"scam","lang":"en"}`))
	f.Add([]byte(`{"text":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ReadMessages(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, m := range ms {
			if strings.TrimSpace(m.Text) == "" || (m.Label != Scam && m.Label != Legit) || (m.Lang != "vi" && m.Lang != "en") {
				t.Fatalf("accepted %+v", m)
			}
		}
	})
}
