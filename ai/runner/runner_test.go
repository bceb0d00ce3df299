package runner

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/scam"
	"github.com/sampan-exchange/sampan/ai/suite"
)

// service stands in for the evaluator's gateway: it answers r1 calls
// with the real classifier (v2), and fails the inputs fail matches.
type service struct {
	calls atomic.Int64
	fail  atomic.Pointer[string]
}

func (sv *service) start(t *testing.T) *httptest.Server {
	msgs, err := scam.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	m, err := scam.Train(scam.V2, msgs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sv.calls.Add(1)
		if r.Header.Get("X-Road-Client") != "VN/ORG/LAB/eval" || !strings.HasPrefix(r.URL.Path, "/r1/VN/GOV/MPS/cybercrime/scam-classifier/") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var in struct{ Text string }
		json.NewDecoder(r.Body).Decode(&in)
		if f := sv.fail.Load(); f != nil && strings.Contains(in.Text, *f) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"type":"Server.ServerProxy.ServiceFailed","message":"backend down"}`))
			return
		}
		i := strings.LastIndex(in.Text, "\n\n")
		label, p := m.Classify(in.Text[i+1:])
		w.Header().Set("X-Road-Id", r.Header.Get("X-Road-Id"))
		w.Header().Set("X-Road-Request-Hash", "hash-"+r.Header.Get("X-Road-Id"))
		json.NewEncoder(w).Encode(map[string]any{"label": label, "score": p, "model_version": m.Version})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func loadSuite(t *testing.T) *suite.Suite {
	s, err := suite.Load(os.DirFS("../suite/testdata/vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts(url, progress string) Options {
	return Options{GatewayURL: url, Client: "VN/ORG/LAB/eval", Service: "VN/GOV/MPS/cybercrime/scam-classifier",
		Recipes: []string{"scam-sms-vi-en"}, ProgressFile: progress, Concurrency: 2}
}

// An interrupted run resumes from its progress file: the samples done
// are not sent again, and the result is the whole suite.
func TestResume(t *testing.T) {
	sv := &service{}
	srv := sv.start(t)
	s := loadSuite(t)
	prog := filepath.Join(t.TempDir(), "progress.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	o := opts(srv.URL, prog)
	o.Concurrency = 1
	o.OnSample = func(done, total int) {
		if done == 5 {
			cancel()
		}
	}
	if _, err := Run(ctx, s, o); err == nil {
		t.Fatal("the interrupted run reported success")
	}
	first := sv.calls.Load()
	o.OnSample = nil
	res, err := Run(t.Context(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	items := len(s.Items(s.Recipes[1]))
	if res.Resumed < 5 || len(res.Samples) != items {
		t.Fatalf("resumed %d, samples %d of %d", res.Resumed, len(res.Samples), items)
	}
	// Each sample is two exchanges (clean and without diacritics).
	if total := sv.calls.Load(); total != int64(2*items) || res.Exchanges != 2*(items-res.Resumed) {
		t.Errorf("calls %d (first run %d), exchanges %d; want %d in all", total, first, res.Exchanges, 2*items)
	}
	for i, smp := range res.Samples {
		if smp.ID != s.Items(s.Recipes[1])[i].ID || len(smp.Calls) != 2 || smp.Calls[0].RequestHash == "" {
			t.Errorf("sample %d: %+v", i, smp)
		}
	}
	// A third run has nothing left to send, even after a crash cut a
	// line short.
	f, _ := os.OpenFile(prog, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"id":"scam-sms`)
	f.Close()
	res, err = Run(t.Context(), s, o)
	if err != nil || res.Resumed != items || res.Exchanges != 0 {
		t.Errorf("third run: %v, resumed %d, exchanges %d", err, res.Resumed, res.Exchanges)
	}
}

// A progress file of another suite (or of the same suite edited since)
// is refused, not mixed in.
func TestResumeRefusesAnotherSuite(t *testing.T) {
	sv := &service{}
	srv := sv.start(t)
	s := loadSuite(t)
	prog := filepath.Join(t.TempDir(), "progress.jsonl")
	if _, err := Run(t.Context(), s, opts(srv.URL, prog)); err != nil {
		t.Fatal(err)
	}
	s.Lock.Suite = strings.Repeat("0", 64)
	n := sv.calls.Load()
	_, err := Run(t.Context(), s, opts(srv.URL, prog))
	if err == nil || !strings.Contains(err.Error(), "the suite has changed since the run began") {
		t.Fatalf("err %v", err)
	}
	if sv.calls.Load() != n {
		t.Error("the refused run sent requests")
	}
	o := opts(srv.URL, prog)
	o.Service = "VN/GOV/MPS/cybercrime/other"
	s = loadSuite(t)
	if _, err := Run(t.Context(), s, o); err == nil || !strings.Contains(err.Error(), "belongs to a run of") {
		t.Fatalf("another service: %v", err)
	}
}

// A failed exchange is recorded with its error, kept out of the
// progress file, and sent again by the next run.
func TestFailedSampleRetried(t *testing.T) {
	sv := &service{}
	srv := sv.start(t)
	s := loadSuite(t)
	target := s.Items(s.Recipes[1])[3]
	msg := target.Prompt[strings.LastIndex(target.Prompt, "\n\n")+2:][:20]
	sv.fail.Store(&msg)
	prog := filepath.Join(t.TempDir(), "progress.jsonl")
	res, err := Run(t.Context(), s, opts(srv.URL, prog))
	if err != nil {
		t.Fatal(err)
	}
	smp := res.Samples[3]
	if !smp.Failed() || smp.Calls[0].Status != 500 || !strings.Contains(smp.Calls[0].Error, "backend down") {
		t.Fatalf("sample 3: %+v", smp)
	}
	sv.fail.Store(nil)
	res, err = Run(t.Context(), s, opts(srv.URL, prog))
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != len(res.Samples)-1 || res.Samples[3].Failed() {
		t.Errorf("rerun: resumed %d of %d, sample 3 %+v", res.Resumed, len(res.Samples), res.Samples[3])
	}
}

// The rate limit spaces the samples.
func TestRate(t *testing.T) {
	sv := &service{}
	srv := sv.start(t)
	s := loadSuite(t)
	o := opts(srv.URL, "")
	o.Rate = 40
	start := time.Now()
	res, err := Run(t.Context(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	// n samples at 40/s: at least (n-1)/40 s.
	if min := time.Duration(len(res.Samples)-1) * time.Second / 40; time.Since(start) < min {
		t.Errorf("%d samples in %s, want at least %s", len(res.Samples), time.Since(start), min)
	}
}

func TestOptionsRefused(t *testing.T) {
	s := loadSuite(t)
	for name, edit := range map[string]func(*Options){
		"client":  func(o *Options) { o.Client = "VN/ORG" },
		"service": func(o *Options) { o.Service = "nope" },
		"rate":    func(o *Options) { o.Rate = -1 },
		"recipe":  func(o *Options) { o.Recipes = []string{"no-such-recipe"} },
		"gateway": func(o *Options) { o.GatewayURL = "" },
	} {
		o := opts("http://127.0.0.1:1", "")
		edit(&o)
		if _, err := Run(t.Context(), s, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
