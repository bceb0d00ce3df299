package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The demo backends: small services with fixed data that stand in for the
// agencies' real systems. Each is mounted at its own prefix on one local
// HTTP server.

type company struct {
	TaxCode    string `json:"tax_code"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Registered string `json:"registered"`
	Province   string `json:"province"`
}

var companies = map[string]company{
	"0100109106": {"0100109106", "Viettel Group", "active", "2005-04-14", "Ha Noi"},
	"0300588569": {"0300588569", "Saigon Beer-Alcohol-Beverage Corporation", "active", "2003-12-31", "Ho Chi Minh City"},
	"0301472704": {"0301472704", "Vinamilk", "active", "2003-11-20", "Ho Chi Minh City"},
}

type entity struct {
	UEN        string `json:"uen"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Registered string `json:"registered"`
}

var entities = map[string]entity{
	"199201624D": {"199201624D", "Singapore Telecommunications Limited", "live", "1992-03-28"},
	"196800306E": {"196800306E", "DBS Bank Ltd.", "live", "1968-07-16"},
}

type resident struct {
	ID          string `json:"id"`
	FullName    string `json:"full_name"`
	DateOfBirth string `json:"date_of_birth"`
	Province    string `json:"province"`
}

// The residents are invented.
var residents = map[string]resident{
	"079200001234": {"079200001234", "Nguyen Van An", "1990-03-02", "Ho Chi Minh City"},
	"001199005678": {"001199005678", "Tran Thi Binh", "1985-11-23", "Ha Noi"},
}

type scamReport struct {
	ID       string    `json:"id"`
	Phone    string    `json:"phone"`
	Summary  string    `json:"summary"`
	Received time.Time `json:"received"`
}

// backends serves the demo services.
type backends struct {
	mu      sync.Mutex
	scams   []scamReport
	filings []filing
}

func newBackends() *backends {
	return &backends{scams: []scamReport{{ID: "VN-SR-0001", Phone: "+84 90 000 0000", Summary: "caller posing as police asks for a bank transfer", Received: time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)}}}
}

func (b *backends) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /companies", func(w http.ResponseWriter, r *http.Request) {
		out := make([]company, 0, len(companies))
		for _, c := range companies {
			out = append(out, c)
		}
		sendJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /companies/{code}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := companies[r.PathValue("code")]
		if !ok {
			sendJSON(w, http.StatusNotFound, map[string]string{"error": "no company with tax code " + r.PathValue("code")})
			return
		}
		sendJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("GET /persons/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := residents[r.PathValue("id")]
		if !ok {
			sendJSON(w, http.StatusNotFound, map[string]string{"error": "no resident with id " + r.PathValue("id")})
			return
		}
		sendJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET /filings/{$}", b.listFilings)
	mux.HandleFunc("GET /filings", b.listFilings)
	mux.HandleFunc("GET /scam-reports/{$}", b.listScams)
	mux.HandleFunc("GET /scam-reports", b.listScams)
	mux.HandleFunc("GET /sg/entities/{uen}", func(w http.ResponseWriter, r *http.Request) {
		e, ok := entities[r.PathValue("uen")]
		if !ok {
			sendJSON(w, http.StatusNotFound, map[string]string{"error": "no entity with UEN " + r.PathValue("uen")})
			return
		}
		sendJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("GET /sg/scam-reports/{$}", b.listSGScams)
	mux.HandleFunc("GET /sg/scam-reports", b.listSGScams)
	mux.HandleFunc("POST /filings/{$}", b.addFiling)
	mux.HandleFunc("POST /filings", b.addFiling)
	mux.HandleFunc("POST /scam-reports/{$}", b.addScam)
	mux.HandleFunc("POST /scam-reports", b.addScam)
	return mux
}

func (b *backends) listScams(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	out := append([]scamReport(nil), b.scams...)
	b.mu.Unlock()
	sendJSON(w, http.StatusOK, out)
}

func (b *backends) addScam(w http.ResponseWriter, r *http.Request) {
	var in scamReport
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	if err := dec.Decode(&in); err != nil || strings.TrimSpace(in.Phone) == "" {
		sendJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON object with at least \"phone\""})
		return
	}
	b.mu.Lock()
	in.ID = "VN-SR-" + time.Now().UTC().Format("20060102150405.000")
	in.Received = time.Now().UTC()
	b.scams = append(b.scams, in)
	b.mu.Unlock()
	sendJSON(w, http.StatusCreated, in)
}

// addFiling takes an annual statement of any size and answers with its
// length and SHA-256: a service to try large bodies with.
func (b *backends) addFiling(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		sendJSON(w, http.StatusBadRequest, map[string]string{"error": "reading the upload failed"})
		return
	}
	f := filing{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), Received: time.Now().UTC()}
	b.mu.Lock()
	b.filings = append(b.filings, f)
	if len(b.filings) > 10000 {
		b.filings = b.filings[1:]
	}
	b.mu.Unlock()
	sendJSON(w, http.StatusCreated, f)
}

func (b *backends) listFilings(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	out := append([]filing{}, b.filings...)
	b.mu.Unlock()
	sendJSON(w, http.StatusOK, out)
}

type filing struct {
	Bytes    int64     `json:"bytes"`
	SHA256   string    `json:"sha256"`
	Received time.Time `json:"received"`
}

func sendJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// openAPI returns a minimal OpenAPI description of a demo service.
func openAPI(title, path, summary string) string {
	return `{"openapi":"3.0.3","info":{"title":"` + title + `","version":"1.0.0"},"paths":{"` + path + `":{"get":{"summary":"` + summary + `","responses":{"200":{"description":"found"},"404":{"description":"not found"}}}}}}` + "\n"
}

func (b *backends) listSGScams(w http.ResponseWriter, r *http.Request) {
	sendJSON(w, http.StatusOK, []scamReport{{ID: "SG-SR-0001", Phone: "+65 8000 0000", Summary: "job offer asking for an advance fee", Received: time.Date(2026, 9, 14, 2, 0, 0, 0, time.UTC)}})
}
