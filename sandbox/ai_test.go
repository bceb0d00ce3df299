package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClassifierBackend(t *testing.T) {
	h, err := aiHandler(http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(version, body string) (int, map[string]any) {
		resp, err := http.Post(srv.URL+"/ai/scam-classifier/"+version, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	scam := `{"text": "Is the following message a scam? Answer with one word: scam or legit.\n\nTai khoan cua quy khach bi tam khoa, xac thuc ngay tai http://abc.top va nhap ma OTP"}`
	for _, tc := range []struct {
		name, version, body string
		status              int
		label               string
	}{
		{"v2 without diacritics", "scam-nb-v2", scam, 200, "scam"},
		{"unknown version", "scam-nb-v9", scam, 404, ""},
		{"not JSON", "scam-nb-v2", `text=hello`, 400, ""},
		{"empty text", "scam-nb-v2", `{"text": "  "}`, 400, ""},
		{"unknown field", "scam-nb-v2", `{"text": "hi", "model": "x"}`, 400, ""},
	} {
		status, out := post(tc.version, tc.body)
		if status != tc.status || tc.label != "" && (out["label"] != tc.label || out["model_version"] != tc.version) {
			t.Errorf("%s: %d %v", tc.name, status, out)
		}
	}
	resp, err := http.Get(srv.URL + "/ai/scam-classifier/scam-nb-v1/")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["model_version"] != "scam-nb-v1" || len(d["model_digest"].(string)) != 64 {
		t.Errorf("describe: %v", d)
	}
}

func TestMessageOf(t *testing.T) {
	for in, want := range map[string]string{
		"just a message":                     "just a message",
		"Instruction.\n\nThe message":        "The message",
		"a\n\nb\n\nlast":                     "last",
		"trailing blank line\n\n":            "trailing blank line\n\n",
		"one line\nbreak is not a paragraph": "one line\nbreak is not a paragraph",
	} {
		if got := messageOf(in); got != want {
			t.Errorf("messageOf(%q) = %q, want %q", in, got, want)
		}
	}
}
