package sandbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ai/ocr"
	"github.com/sampan-exchange/sampan/ai/ocr/render"
)

func TestOCRBackend(t *testing.T) {
	eng, err := ocr.Find(t.Context())
	var f *render.Font
	if err == nil {
		f, err = render.LoadFont(render.DejaVuSans)
	}
	if err != nil {
		if os.Getenv("SAMPAN_REQUIRE_TESSERACT") == "1" {
			t.Fatalf("SAMPAN_REQUIRE_TESSERACT=1 but: %v", err)
		}
		t.Skipf("skipped (install tesseract-ocr tesseract-ocr-vie tesseract-ocr-eng fonts-dejavu-core): %v", err)
	}
	img, err := f.PNG("Giấy khai sinh", render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ocrHandler(eng, nil, http.NotFoundHandler()))
	defer srv.Close()
	post := func(body []byte) (int, map[string]any) {
		resp, err := http.Post(srv.URL+"/ai/ocr", "image/png", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := post(img)
	if status != 200 || out["text"] != "Giấy khai sinh" || out["model_version"] != eng.ModelVersion() {
		t.Fatalf("read: %d %v", status, out)
	}
	if status, out := post([]byte(`{"text": "not an image"}`)); status != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d %v", status, out)
	}
	big := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, ocr.MaxImage)...)
	if status, out := post(big); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the limit: %d %v", status, out)
	}
	// Without tesseract the service says why.
	none := httptest.NewServer(ocrHandler(nil, errors.New("ocr: tesseract is not installed"), http.NotFoundHandler()))
	defer none.Close()
	resp, err := http.Post(none.URL+"/ai/ocr", "image/png", strings.NewReader(string(img)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without tesseract: %d", resp.StatusCode)
	}
	resp, err = http.Get(none.URL + "/ai/ocr")
	if err != nil {
		t.Fatal(err)
	}
	var desc map[string]any
	json.NewDecoder(resp.Body).Decode(&desc)
	resp.Body.Close()
	if resp.StatusCode != 200 || desc["available"] != false || !strings.Contains(desc["missing"].(string), "not installed") {
		t.Fatalf("description without tesseract: %d %v", resp.StatusCode, desc)
	}
}

// TestOCRWelcome: without tesseract the welcome text says once that the
// OCR service is not served, and why; with it, how to evaluate it.
func TestOCRWelcome(t *testing.T) {
	s := &Sandbox{Dir: "/sb", ocrErr: errors.New("ocr: tesseract has no vie model (install tesseract-ocr-vie)")}
	s.Manifest.AIServices = []ManifestAIService{{ID: "VN/GOV/MPS/cybercrime/scam-classifier", ModelVersion: "scam-nb-v2"}}
	var out strings.Builder
	curl := func(gw, client string, purpose ...string) string { return "curl " + client + " " }
	s.printAIWelcome(&out, curl)
	if n := strings.Count(out.String(), OCRService); n != 1 || !strings.Contains(out.String(), "no vie model") || strings.Contains(out.String(), "ocr-vi-en") {
		t.Fatalf("without tesseract, %d mentions:\n%s", n, out.String())
	}
	s.ocr, s.ocrErr = &ocr.Engine{Version: "5.3.0", Models: map[string]string{"vie": strings.Repeat("a", 64), "eng": strings.Repeat("b", 64)}}, nil
	s.Manifest.AIServices = append(s.Manifest.AIServices, ManifestAIService{ID: OCRService, ModelVersion: s.ocr.ModelVersion()})
	out.Reset()
	s.printAIWelcome(&out, curl)
	if !strings.Contains(out.String(), "--service "+OCRService+" --answer-field text") || strings.Contains(out.String(), "not served") ||
		strings.Contains(out.String(), "report-tesseract") {
		t.Fatalf("with tesseract:\n%s", out.String())
	}
}
