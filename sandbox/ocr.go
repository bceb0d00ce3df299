package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sampan-exchange/sampan/ai/ocr"
	"github.com/sampan-exchange/sampan/gateway"
)

// The OCR service: MPS digitises residents' documents with tesseract
// (Debian's tesseract-ocr with its Vietnamese and English models). The
// service is always registered, so that the world is the same whether
// or not tesseract is installed; without tesseract its backend answers
// POST with 503 (GET describes what is missing), the manifest does not list it among the AI services, and the
// welcome text says so.

// OCRService is the OCR service's identifier.
const OCRService = "VN/GOV/MPS/residents/ocr"

// ocrSuite is the suite that applies to it (ai/suite/testdata/ocr-vi-en).
const ocrSuite = "sampan-ocr-vi-en#ocr-vi-en"

// ocrServiceDef: images of documents hold personal data.
func ocrServiceDef() serviceDef {
	return serviceDef{
		id: OCRService, title: "Document OCR (Vietnamese and English)",
		backendPath: "/ai/ocr", openAPIPath: "/", example: "/", exampleClient: EvaluatorClient,
		examplePurpose: EvaluationPurpose,
		dataClass:      "confidential", flags: []string{"personal"},
		endpoints: []string{"GET /", "POST /"},
		access:    []gateway.AccessRight{{Subject: EvaluatorClient, Endpoint: "GET /"}, {Subject: EvaluatorClient, Endpoint: "POST /"}},
	}
}

// ocrResponse is the OCR service's answer.
type ocrResponse struct {
	Text         string   `json:"text"`
	ModelVersion string   `json:"model_version"`
	Languages    []string `json:"languages"`
}

// findOCR looks for tesseract and its models; the error says what is
// missing.
func findOCR(ctx context.Context) (*ocr.Engine, error) {
	return ocr.Find(ctx)
}

// ocrHandler serves the OCR service at /ai/ocr with eng (nil: not
// installed, for the reason missing); other paths go to next.
func ocrHandler(eng *ocr.Engine, missing error, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	unavailable := func(w http.ResponseWriter) bool {
		if eng == nil {
			sendJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "OCR is not installed here: " + missing.Error()})
			return true
		}
		return false
	}
	read := func(w http.ResponseWriter, r *http.Request) {
		if unavailable(w) {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, ocr.MaxImage+1))
		switch {
		case err != nil:
			sendJSON(w, http.StatusBadRequest, map[string]string{"error": "read the image: " + err.Error()})
			return
		case len(body) > ocr.MaxImage:
			sendJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the image is larger than %d bytes", ocr.MaxImage)})
			return
		case !ocr.IsImage(body):
			sendJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "POST a PNG or JPEG image as the body"})
			return
		}
		text, err := eng.Recognize(r.Context(), body)
		if err != nil {
			status := http.StatusUnprocessableEntity
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			sendJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		sendJSON(w, http.StatusOK, ocrResponse{Text: text, ModelVersion: eng.ModelVersion(), Languages: ocr.Languages})
	}
	describe := func(w http.ResponseWriter, r *http.Request) {
		if eng == nil {
			// The description answers, saying what is missing.
			sendJSON(w, http.StatusOK, map[string]any{"available": false, "missing": missing.Error()})
			return
		}
		sendJSON(w, http.StatusOK, map[string]any{
			"available": true, "model_version": eng.ModelVersion(), "engine": "tesseract " + eng.Version, "languages": ocr.Languages,
			"models_sha256": eng.Models,
			"usage":         `POST a PNG or JPEG image (at most 8 MiB) → {"text": "…", "model_version": "…", "languages": ["vie", "eng"]}`,
		})
	}
	mux.HandleFunc("POST /ai/ocr", read)
	mux.HandleFunc("POST /ai/ocr/{$}", read)
	mux.HandleFunc("GET /ai/ocr", describe)
	mux.HandleFunc("GET /ai/ocr/{$}", describe)
	return mux
}
