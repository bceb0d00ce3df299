package runner

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/sampan-exchange/sampan/ai/suite"
)

// TestImageBodies: an image recipe's item is sent as its image, with
// the image's media type, and the answer is read from the answer field.
// The stand-in service answers with the target whose image it received,
// so the run scores perfectly only if every body is the right image.
func TestImageBodies(t *testing.T) {
	s, err := suite.Load(os.DirFS("../suite/testdata/ocr-vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	byImage := map[string]string{}
	for _, it := range s.Items(s.Recipes[0]) {
		byImage[string(it.Image)] = it.Targets[0]
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		text, ok := byImage[string(b)]
		if !ok || r.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			http.Error(w, "not one of the images", http.StatusUnsupportedMediaType)
			return
		}
		w.Header().Set("X-Road-Request-Hash", "h")
		json.NewEncoder(w).Encode(map[string]string{"text": text, "model_version": "stand-in"})
	}))
	defer srv.Close()
	res, err := Run(t.Context(), s, Options{GatewayURL: srv.URL, Client: "VN/ORG/LAB/eval", Service: "VN/GOV/MPS/residents/ocr", AnswerField: "text"})
	if err != nil {
		t.Fatal(err)
	}
	for _, smp := range res.Samples {
		if smp.Failed() || smp.Calls[0].Answer != smp.Targets[0] {
			t.Fatalf("sample %s: %+v", smp.ID, smp.Calls)
		}
	}
	if len(res.Samples) != 12 {
		t.Fatalf("%d samples", len(res.Samples))
	}
}
