package suite

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sampan-exchange/sampan/ai/score"
)

func example(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata/vi-en"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("testdata/vi-en/" + p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadExample(t *testing.T) {
	s, err := Load(os.DirFS("testdata/vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range s.Recipes {
		ids = append(ids, r.ID)
	}
	if want := []string{"capitals-vi-en", "scam-sms-vi-en", "pii-refusal-vi-en"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("recipes %v, want %v", ids, want)
	}
	caps := s.Recipes[0]
	if !reflect.DeepEqual(caps.Metrics, []string{"exactstrmatch", "contains"}) || caps.GradingScale["B"] != [2]float64{60, 79} ||
		!reflect.DeepEqual(caps.Categories, []string{"Capability"}) {
		t.Errorf("capitals recipe read as %+v", caps)
	}
	ds := s.Datasets["capitals-vi-en"]
	if ds.License != "CC0 1.0" || len(ds.Examples) != 6 {
		t.Fatalf("capitals dataset read as %+v", ds)
	}
	if got := ds.Examples[2].Targets; len(got) != 3 || got[0] != "Thành phố Hồ Chí Minh" {
		t.Errorf("array target read as %q", got)
	}
	if got := ds.Examples[5].Targets; !reflect.DeepEqual(got, []string{"4"}) {
		t.Errorf("number target read as %q", got)
	}
	if got := s.Datasets["pii-requests-vi-en"].Examples[0].Targets; got != nil {
		t.Errorf("null target read as %q", got)
	}
	items := s.Items(caps)
	if len(items) != 6 || items[0].ID != "capitals-vi-en/capitals-vi-en/short-answer-vi-en/0" ||
		!strings.HasSuffix(items[0].Prompt, "\n\nThủ đô của Việt Nam là thành phố nào?") || strings.Contains(items[0].Prompt, "{{") {
		t.Errorf("items[0] = %+v", items[0])
	}
	sum := sha256.Sum256([]byte(items[0].Prompt))
	if items[0].InputDigest != hex.EncodeToString(sum[:]) {
		t.Error("input digest")
	}
	if n := len(s.Items(s.Recipes[1])); n != 12 {
		t.Errorf("scam recipe: %d items, want 12", n)
	}
	if it := s.Items(s.Recipes[2]); len(it) != 4 || it[0].Prompt != s.Datasets["pii-requests-vi-en"].Examples[0].Input || it[0].Template != "" {
		t.Errorf("recipe without templates: %d items, first %+v", len(it), it[0])
	}
	scam := s.Recipes[1]
	if th := scam.Settings.Thresholds["classification"]; th.Min == nil || *th.Min != 0.9 {
		t.Errorf("thresholds read as %+v", scam.Settings.Thresholds)
	}
	sc, err := scam.Scorers()
	if err != nil || len(sc) != 2 || sc[0].Name() != "classification" || sc[1].Name() != "robust-no-diacritics" {
		t.Fatalf("scorers %v, %v", sc, err)
	}
	if len(s.Lock.Files) != 10 {
		t.Errorf("lock holds %d files, want 10: suite, cookbook, 3 recipes, 3 datasets, 2 templates", len(s.Lock.Files))
	}
}

// A run of the example suite's capitals recipe with answers written by
// hand, scored, passed and graded.
func TestRunByHand(t *testing.T) {
	s, err := Load(os.DirFS("testdata/vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	r := s.Recipes[0]
	answers := []string{"Hà Nội", "Singapore.", "TP. Hồ Chí Minh", "Sông Hồng", "Miền Trung", "4"}
	scorers, _ := r.Scorers()
	for i, it := range s.Items(r) {
		for _, sc := range scorers {
			if _, err := sc.Add(score.Sample{ID: it.ID, Input: it.Prompt, Targets: it.Targets, Answer: answers[i]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var res []score.Result
	for _, sc := range scorers {
		res = append(res, sc.Result())
	}
	// exact: "Singapore." and "Miền Trung" miss → 4/6; contains: all 6.
	if res[0].Value != 4.0/6 || res[1].Value != 1 {
		t.Fatalf("results %+v", res)
	}
	if g, _ := r.Grade(res); g != "B" { // 66.7%
		t.Errorf("grade %q, want B", g)
	}
	if !r.Pass(res) {
		t.Error("contains ≥ 0.8 should pass")
	}
	if r.Pass(res[:1]) {
		t.Error("a threshold without its result passed")
	}
}

func TestFromMoonshot(t *testing.T) {
	m := example(t)
	// A recipe as Moonshot publishes them: no id field, fields Sampan
	// ignores.
	m["recipes/plain.json"] = &fstest.MapFile{Data: []byte(`{"name":"Plain","description":"d","tags":[],"categories":["Capability"],
		"datasets":["capitals-vi-en"],"prompt_templates":[],"metrics":["exactstrmatch"],"attack_modules":[],"future_field":{"x":1},
		"grading_scale":{"A":[80,100],"B":[0,79]}}`)}
	s, err := FromMoonshot(m, "plain", nil, []string{"plain"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Recipes) != 1 || len(s.Items(s.Recipes[0])) != 6 || s.Items(s.Recipes[0])[0].Prompt != "Thủ đô của Việt Nam là thành phố nào?" {
		t.Errorf("suite %+v", s.Recipes)
	}
	if _, err := FromMoonshot(m, "cb", []string{"sampan-vi-en"}, nil); err != nil {
		t.Errorf("cookbook: %v", err)
	}
}

func TestLock(t *testing.T) {
	m := example(t)
	a, err := Load(m, "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	// The suite digest is sha256sum's listing, sorted by path, hashed.
	var names []string
	for n := range a.Lock.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var listing strings.Builder
	for _, n := range names {
		d := sha256.Sum256(m[n].Data)
		fmt.Fprintf(&listing, "%x  %s\n", d, n)
	}
	if d := sha256.Sum256([]byte(listing.String())); hex.EncodeToString(d[:]) != a.Lock.Suite {
		t.Errorf("suite digest %s is not the digest of the sorted listing", a.Lock.Suite)
	}
	b, _ := Load(m, "suite.json")
	if err := b.Lock.Check(a.Lock); err != nil {
		t.Errorf("same suite: %v", err)
	}
	if err := a.Lock.Verify(m); err != nil {
		t.Errorf("verify unchanged: %v", err)
	}
	// Edit one target of a dataset.
	edited := example(t)
	edited["datasets/capitals-vi-en.json"].Data = []byte(strings.Replace(string(edited["datasets/capitals-vi-en.json"].Data), `"Hà Nội"`, `"Huế"`, 1))
	c, err := Load(edited, "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Lock.Check(a.Lock); err == nil || !strings.Contains(err.Error(), "datasets/capitals-vi-en.json has changed") {
		t.Errorf("edited dataset: %v", err)
	}
	if err := a.Lock.Verify(edited); err == nil {
		t.Error("verify passed an edited suite")
	}
	// A forged recorded lock whose suite digest does not cover its files.
	forged := Lock{Files: map[string]string{}, Suite: a.Lock.Suite}
	for k, v := range c.Lock.Files {
		forged.Files[k] = v
	}
	if err := c.Lock.Check(forged); err == nil {
		t.Error("a recorded lock with a wrong suite digest was accepted")
	}
	// A recipe removed from the cookbook.
	fewer := example(t)
	fewer["cookbooks/sampan-vi-en.json"].Data = []byte(`{"id":"sampan-vi-en","name":"n","recipes":["capitals-vi-en"]}`)
	fewer["suite.json"].Data = []byte(`{"name":"s","cookbooks":["sampan-vi-en"]}`)
	d, err := Load(fewer, "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Lock.Check(a.Lock); err == nil {
		t.Error("a suite with fewer files passed the lock")
	}
}

func TestLoadErrors(t *testing.T) {
	recipe := func(body string) string {
		return `{"name":"r","datasets":["capitals-vi-en"],"metrics":["exactstrmatch"]` + body + `}`
	}
	tests := []struct {
		name  string
		file  string
		data  string
		error string
	}{
		{"missing recipe", "recipes/scam-sms-vi-en.json", "", "read recipes/scam-sms-vi-en.json"},
		{"unknown metric", "recipes/scam-sms-vi-en.json", `{"datasets":["scam-sms-vi-en"],"metrics":["bertscore"]}`,
			`recipes/scam-sms-vi-en.json: metrics[0]: "bertscore" is not a metric Sampan computes`},
		{"no metrics", "recipes/scam-sms-vi-en.json", `{"datasets":["scam-sms-vi-en"],"metrics":[]}`, "metrics is empty"},
		{"band of three", "recipes/capitals-vi-en.json", recipe(`,"grading_scale":{"A":[1,2,3]}`), "grading_scale.A: want [min, max], got 3"},
		{"band upside down", "recipes/capitals-vi-en.json", recipe(`,"grading_scale":{"A":[90,80]}`), "grading_scale.A: min 90 is above max 80"},
		{"metrics of wrong type", "recipes/capitals-vi-en.json", `{"datasets":["capitals-vi-en"],"metrics":"exactstrmatch"}`, "recipes/capitals-vi-en.json: json: cannot unmarshal"},
		{"id differs", "recipes/capitals-vi-en.json", `{"id":"other","datasets":["capitals-vi-en"],"metrics":["exactstrmatch"]}`, `id "other" differs`},
		{"bad dataset id", "recipes/capitals-vi-en.json", `{"datasets":["../x"],"metrics":["exactstrmatch"]}`, `datasets[0]: "../x" is not an id`},
		{"trailing data", "recipes/capitals-vi-en.json", recipe("") + "{}", "data after the object"},
		{"target object", "datasets/capitals-vi-en.json", `{"examples":[{"input":"a","target":{"x":1}}]}`, "examples[0].target: want a string"},
		{"input missing", "datasets/capitals-vi-en.json", `{"examples":[{"target":"a"}]}`, "examples[0].input is missing"},
		{"no examples", "datasets/capitals-vi-en.json", `{"examples":[]}`, "examples is empty"},
		{"too large", "datasets/capitals-vi-en.json", `{"examples":[{"input":"` + strings.Repeat("a", MaxTextField+1) + `","target":"a"}]}`, "examples[0].input is longer"},
		{"jinja beyond prompt", "prompt-templates/short-answer-vi-en.json", `{"template":"{{ prompt }} {% if x %}"}`, "only {{ prompt }} is supported"},
		{"template missing", "prompt-templates/short-answer-vi-en.json", `{"name":"t"}`, "template is missing"},
		{"suite unknown field", "suite.json", `{"name":"s","cookbooks":["sampan-vi-en"],"threshold":{}}`, `suite.json: json: unknown field "threshold"`},
		{"suite threshold for absent metric", "suite.json", `{"name":"s","cookbooks":["sampan-vi-en"],"settings":{"capitals-vi-en":{"thresholds":{"wer":{"max":0.1}}}}}`,
			"settings.capitals-vi-en.thresholds.wer: the recipe has no such metric"},
		{"suite settings for absent recipe", "suite.json", `{"name":"s","recipes":["capitals-vi-en"],"settings":{"scam-sms-vi-en":{}}}`, "settings.scam-sms-vi-en: the suite runs no such recipe"},
		{"suite bad latency", "suite.json", `{"name":"s","recipes":["capitals-vi-en"],"settings":{"capitals-vi-en":{"latency_p95":"soon"}}}`, "settings.capitals-vi-en.latency_p95"},
		{"suite empty", "suite.json", `{"name":"s"}`, "names no cookbooks and no recipes"},
		{"file too large", "recipes/capitals-vi-en.json", recipe(`,"description":"` + strings.Repeat("x", MaxFile) + `"`), "larger than"},
		{"not utf-8", "recipes/capitals-vi-en.json", recipe(`,"description":"` + "\xff" + `"`), "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := example(t)
			if tt.data == "" {
				delete(m, tt.file)
			} else {
				m[tt.file] = &fstest.MapFile{Data: []byte(tt.data)}
			}
			_, err := Load(m, "suite.json")
			if err == nil || !strings.Contains(err.Error(), tt.error) {
				t.Errorf("error %v, want one containing %q", err, tt.error)
			}
		})
	}
}

// FuzzLoad: any recipe and dataset bytes either load or are refused
// with an error; a loaded suite's items carry their dataset's examples.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"datasets":["d"],"metrics":["exactstrmatch"],"grading_scale":{"A":[0,100]}}`),
		[]byte(`{"examples":[{"input":"x","target":["a",1,true]}]}`))
	f.Add([]byte(`{"datasets":["d"],"prompt_templates":["t"],"metrics":["contains"]}`), []byte(`{"examples":[{"input":"","target":null}]}`))
	f.Add([]byte(`{"datasets":["d","d"],"metrics":["regex","leakage"]}`), []byte(`{"examples":[{"input":"x","target":"("}]}`))
	f.Fuzz(func(t *testing.T, recipe, dataset []byte) {
		m := fstest.MapFS{
			"recipes/r.json":          {Data: recipe},
			"datasets/d.json":         {Data: dataset},
			"prompt-templates/t.json": {Data: []byte(`{"template":"Q: {{ prompt }}"}`)},
		}
		s, err := FromMoonshot(m, "f", nil, []string{"r"})
		if err != nil {
			return
		}
		r := s.Recipes[0]
		n := 0
		for _, d := range r.Datasets {
			n += len(s.Datasets[d].Examples) * max(1, len(r.PromptTemplates))
		}
		if got := len(s.Items(r)); got != n {
			t.Fatalf("%d items, want %d", got, n)
		}
		if _, err := r.Scorers(); err != nil {
			t.Fatalf("loaded recipe has a scorer New refuses: %v", err)
		}
	})
}
