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
}
