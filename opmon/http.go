package opmon

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// NextHeader carries a page's Next cursor in every answer of Handler,
// CSV included ("" on the last page).
const NextHeader = "Sampan-Next"

// maxQuery bounds the query string of a request.
const maxQuery = 8 << 10

// Handler serves the records over HTTP: GET /records with the query
// parameters from and to (RFC 3339), client, service, side, status,
// error_type, succeeded (true or false), limit, after and format (json,
// the default, or csv). JSON is {"records": [...], "next": "..."}; CSV
// has a header row. A bad parameter is answered 400 with a JSON body
// {"error": "..."} naming it. The handler does not authenticate: the
// listener it is mounted on decides who may call it.
func Handler(s *Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/records", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET")
			return
		}
		f, format, err := parseFilter(r.URL)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		p, err := s.Query(r.Context(), f)
		if errors.Is(err, ErrBadFilter) {
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadFilter.Error()+": "))
			return
		}
		if err != nil {
			s.log.ErrorContext(r.Context(), "monitoring records query failed", "err", err)
			writeError(w, http.StatusInternalServerError, "the records could not be read")
			return
		}
		w.Header().Set(NextHeader, p.Next)
		w.Header().Set("Cache-Control", "no-store")
		if format == "csv" {
			writeCSV(w, p)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		out := pageJSON{Records: make([]recordJSON, len(p.Records)), Next: p.Next}
		for i := range p.Records {
			out.Records[i] = toJSON(&p.Records[i])
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	})
	return mux
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// parseFilter reads the query parameters, each at most once.
func parseFilter(u *url.URL) (Filter, string, error) {
	var f Filter
	format := "json"
	if len(u.RawQuery) > maxQuery {
		return f, "", fmt.Errorf("query string is longer than %d bytes", maxQuery)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return f, "", fmt.Errorf("query string: %v", err)
	}
	for name, vs := range q {
		if len(vs) != 1 {
			return f, "", fmt.Errorf("parameter %s: given %d times", name, len(vs))
		}
		v := vs[0]
		if len(v) > maxValue {
			return f, "", fmt.Errorf("parameter %s: longer than %d bytes", name, maxValue)
		}
		bad := func(what string) error { return fmt.Errorf("parameter %s: %q is not %s", name, v, what) }
		switch name {
		case "from", "to":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, "", bad("an RFC 3339 time")
			}
			if name == "from" {
				f.From = t
			} else {
				f.To = t
			}
		case "client":
			f.Client = v
		case "service":
			f.Service = v
		case "error_type":
			f.ErrorType = v
		case "side":
			if v != "consumer" && v != "provider" {
				return f, "", bad("consumer or provider")
			}
			f.Side = v
		case "status":
			n, err := strconv.Atoi(v)
			if err != nil || n < 100 || n > 599 {
				return f, "", bad("an HTTP status")
			}
			f.Status = n
		case "succeeded":
			b, err := strconv.ParseBool(v)
			if err != nil || (v != "true" && v != "false") {
				return f, "", bad("true or false")
			}
			f.Succeeded = &b
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				return f, "", bad(fmt.Sprintf("a number from 1 to %d", MaxLimit))
			}
			f.Limit = n
		case "after":
			if _, err := parseCursor(v); err != nil {
				return f, "", bad("a cursor this server gave")
			}
			f.After = v
		case "format":
			if v != "json" && v != "csv" {
				return f, "", bad("json or csv")
			}
			format = v
		default:
			return f, "", fmt.Errorf("parameter %s: unknown", name)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, "", errors.New("parameter to: before from")
	}
	return f, format, nil
}

// pageJSON and recordJSON are the JSON forms of Page and Record: names in
// snake_case, times in RFC 3339 (absent when not reached), step durations
// in microseconds.
type pageJSON struct {
	Records []recordJSON `json:"records"`
	Next    string       `json:"next"`
}

type recordJSON struct {
	ID               int64      `json:"id"`
	Side             string     `json:"side"`
	Gateway          string     `json:"gateway"`
	PeerGateway      string     `json:"peer_gateway"`
	RequestInAt      string     `json:"request_in_at,omitempty"`
	RequestOutAt     string     `json:"request_out_at,omitempty"`
	ResponseInAt     string     `json:"response_in_at,omitempty"`
	ResponseOutAt    string     `json:"response_out_at,omitempty"`
	Client           string     `json:"client"`
	Service          string     `json:"service"`
	XRoadID          string     `json:"x_road_id"`
	RequestID        string     `json:"request_id"`
	UserID           string     `json:"user_id"`
	Issue            string     `json:"issue"`
	RepresentedParty string     `json:"represented_party"`
	Protocol         string     `json:"protocol"`
	Method           string     `json:"method"`
	Path             string     `json:"path"`
	RequestBytes     int64      `json:"request_bytes"`
	ResponseBytes    int64      `json:"response_bytes"`
	Status           int        `json:"status"`
	Succeeded        bool       `json:"succeeded"`
	ErrorType        string     `json:"error_type"`
	ErrorMessage     string     `json:"error_message"`
	Traceparent      string     `json:"traceparent"`
	Steps            []stepJSON `json:"steps"`
}

type stepJSON struct {
	Name       string `json:"name"`
	DurationUS int64  `json:"duration_us"`
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func toJSON(r *Record) recordJSON {
	steps := make([]stepJSON, len(r.Steps))
	for i, s := range r.Steps {
		steps[i] = stepJSON{s.Name, s.Duration.Microseconds()}
	}
	return recordJSON{r.ID, r.Side, r.Gateway, r.PeerGateway,
		timeText(r.RequestInAt), timeText(r.RequestOutAt), timeText(r.ResponseInAt), timeText(r.ResponseOutAt),
		r.Client, r.Service, r.XRoadID, r.RequestID, r.UserID, r.Issue, r.RepresentedParty,
		r.Protocol, r.Method, r.Path, r.RequestBytes, r.ResponseBytes, r.Status, r.Succeeded,
		r.ErrorType, r.ErrorMessage, r.Traceparent, steps}
}

// csvHeader names the CSV columns, as the JSON fields; steps are
// "name=µs;…".
var csvHeader = []string{"id", "side", "gateway", "peer_gateway", "request_in_at", "request_out_at", "response_in_at", "response_out_at",
	"client", "service", "x_road_id", "request_id", "user_id", "issue", "represented_party", "protocol", "method", "path",
	"request_bytes", "response_bytes", "status", "succeeded", "error_type", "error_message", "traceparent", "steps"}

func writeCSV(w http.ResponseWriter, p Page) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	// Text a caller chose may start like a spreadsheet formula: such a
	// cell is written with a leading apostrophe.
	t := func(s string) string {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			return "'" + s
		}
		return s
	}
	for _, r := range p.Records {
		cw.Write([]string{strconv.FormatInt(r.ID, 10), t(r.Side), t(r.Gateway), t(r.PeerGateway),
			timeText(r.RequestInAt), timeText(r.RequestOutAt), timeText(r.ResponseInAt), timeText(r.ResponseOutAt),
			t(r.Client), t(r.Service), t(r.XRoadID), t(r.RequestID), t(r.UserID), t(r.Issue), t(r.RepresentedParty),
			t(r.Protocol), t(r.Method), t(r.Path), strconv.FormatInt(r.RequestBytes, 10), strconv.FormatInt(r.ResponseBytes, 10),
			strconv.Itoa(r.Status), strconv.FormatBool(r.Succeeded), t(r.ErrorType), t(r.ErrorMessage), t(r.Traceparent),
			t(string(appendSteps(nil, r.Steps)))})
	}
	cw.Flush()
}
