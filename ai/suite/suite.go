// Package suite reads evaluation suites written in Project Moonshot's
// formats — datasets, recipes, cookbooks and prompt templates, each a
// JSON file in its folder, named by its id — and Sampan's own suite
// file, which names the cookbooks and recipes to run and adds pass
// thresholds per metric and scorer settings. A suite is locked by the
// SHA-256 digests of every file it read, so an edited suite is
// detectable.
//
// Moonshot files are read as Moonshot reads them: fields Sampan does not
// use (attack_modules, tags, …) are ignored. Sampan's suite file is
// decoded strictly. Layout, limits and digests are described in
// docs/design/ai-evaluation.md.
package suite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ai/score"
)

// Folders of a suite directory, as Moonshot lays them out.
const (
	DatasetDir  = "datasets"
	RecipeDir   = "recipes"
	CookbookDir = "cookbooks"
	TemplateDir = "prompt-templates"
	// ImageDir holds the images of recipes whose input is "image".
	ImageDir = "images"
)

// Limits on what a suite may hold.
const (
	MaxDatasetFile  = 64 << 20 // bytes of one dataset file
	MaxFile         = 1 << 20  // bytes of any other file
	MaxExamples     = 100000   // examples in one dataset
	MaxTextField    = 64 << 10 // bytes of one input or target
	MaxTargets      = 64       // targets of one example
	MaxRecipes      = 1000     // recipes in a suite
	MaxListed       = 100      // datasets, templates or metrics of one recipe
	MaxSuiteSamples = 1000000  // items a suite expands to
	MaxImage        = 8 << 20  // bytes of one image
	MaxImagesBytes  = 1 << 30  // bytes of all the images of a suite
)

// Input kinds of a recipe (RecipeSettings.Input).
const (
	InputText  = "text"
	InputImage = "image"
)

// imagePattern is an image input: a PNG or JPEG file of ImageDir.
var imagePattern = regexp.MustCompile(`^images/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(png|jpg|jpeg)$`)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Dataset is a Moonshot dataset.
type Dataset struct {
	ID          string
	Name        string
	Description string
	License     string
	Reference   string
	Examples    []Example
}

// Example is one input with its acceptable targets.
type Example struct {
	Input   string
	Targets []string
}

// Recipe is a Moonshot recipe, with Sampan's settings for it.
type Recipe struct {
	ID              string
	Name            string
	Description     string
	Tags            []string
	Categories      []string
	Datasets        []string
	PromptTemplates []string
	Metrics         []string
	GradingScale    score.GradingScale
	// Settings are Sampan's additions from the suite file (zero when
	// the recipe runs as Moonshot wrote it).
	Settings RecipeSettings
}

// Cookbook is a Moonshot cookbook: a named list of recipes.
type Cookbook struct {
	ID          string
	Name        string
	Description string
	Recipes     []string
}

// Template is a Moonshot prompt template. Sampan renders the one form
// Moonshot's templates use for the input, {{ prompt }}; any other
// template syntax is refused when the suite is read.
type Template struct {
	ID          string
	Name        string
	Description string
	Template    string
}

var (
	rePromptVar = regexp.MustCompile(`\{\{\s*prompt\s*\}\}`)
	reJinja     = regexp.MustCompile(`\{\{|\}\}|\{%|%\}|\{#|#\}`)
)

// Render returns the template with the input in place of {{ prompt }}.
func (t *Template) Render(input string) string {
	return rePromptVar.ReplaceAllLiteralString(t.Template, input)
}

// Suite is a loaded suite: its recipes in order, the datasets, templates
// and cookbooks they use, and its lock.
type Suite struct {
	Name        string
	Description string
	Recipes     []*Recipe
	Cookbooks   []*Cookbook
	Datasets    map[string]*Dataset
	Templates   map[string]*Template
	// Images are the images of image recipes, by input ("images/x.png").
	Images map[string][]byte
	Lock   Lock
}

// File is Sampan's suite file.
type File struct {
	// Name and Description describe the suite.
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Cookbooks and Recipes name what to run: each cookbook's recipes,
	// then each recipe (a recipe named twice runs once).
	Cookbooks []string `json:"cookbooks,omitempty"`
	Recipes   []string `json:"recipes,omitempty"`
	// Settings are per recipe id.
	Settings map[string]RecipeSettings `json:"settings,omitempty"`
}

// RecipeSettings are Sampan's additions to a recipe.
type RecipeSettings struct {
	// Thresholds are pass marks per metric name, on the metric's Value.
	Thresholds map[string]score.Threshold `json:"thresholds,omitempty"`
	// Labels fixes the classes of the classification scorer.
	Labels []string `json:"labels,omitempty"`
	// LatencyP50 and LatencyP95 are the latency objective, as Go
	// durations ("800ms").
	LatencyP50 string `json:"latency_p50,omitempty"`
	LatencyP95 string `json:"latency_p95,omitempty"`
	// CountEchoes makes the leakage scorer count identifiers the input
	// held.
	CountEchoes bool `json:"count_echoes,omitempty"`
	// Repeats is how often the runner sends each input again, for the
	// determinism scorer (default 2 when that scorer is listed).
	Repeats int `json:"repeats,omitempty"`
	// Input is "text" (the default: the prompt is sent as text) or
	// "image": each input of the recipe's datasets names a PNG or JPEG
	// file under images/ beside the suite file ("images/vi-01.png"),
	// which the runner sends as the request body. No prompt template and
	// no robustness metric applies to an image.
	Input string `json:"input,omitempty"`
}

// Params returns the score parameters the settings stand for.
func (s RecipeSettings) Params() score.Params {
	p := score.Params{Labels: s.Labels, CountEchoes: s.CountEchoes}
	p.Latency.P50, _ = time.ParseDuration(s.LatencyP50)
	p.Latency.P95, _ = time.ParseDuration(s.LatencyP95)
	return p
}

func (s RecipeSettings) validate(field string, metrics []string) error {
	for name := range s.Thresholds {
		if !contains(metrics, name) {
			return fmt.Errorf("%s.thresholds.%s: the recipe has no such metric", field, name)
		}
	}
	for _, d := range []struct{ n, v string }{{"latency_p50", s.LatencyP50}, {"latency_p95", s.LatencyP95}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			return fmt.Errorf("%s.%s: %q is not a positive duration", field, d.n, d.v)
		}
	}
	if s.Repeats < 0 || s.Repeats > 20 {
		return fmt.Errorf("%s.repeats: %d is not in 0..20", field, s.Repeats)
	}
	switch s.Input {
	case "", InputText:
	case InputImage:
		for _, m := range metrics {
			if strings.HasPrefix(m, "robust-") {
				return fmt.Errorf("%s.input: an image recipe cannot use the metric %s (perturbations apply to text)", field, m)
			}
		}
	default:
		return fmt.Errorf("%s.input: %q is neither %q nor %q", field, s.Input, InputText, InputImage)
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Load reads the suite file at name in fsys (a Moonshot-layout
// directory: datasets/, recipes/, cookbooks/, prompt-templates/ beside
// it) and everything it names.
func Load(fsys fs.FS, name string) (*Suite, error) {
	l := &loader{fsys: fsys, root: path.Dir(name), files: map[string][]byte{}}
	b, err := l.read(name, MaxFile)
	if err != nil {
		return nil, err
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: data after the suite object", name)
	}
	if strings.TrimSpace(f.Name) == "" {
		return nil, fmt.Errorf("%s: name is empty", name)
	}
	if len(f.Cookbooks)+len(f.Recipes) == 0 {
		return nil, fmt.Errorf("%s: names no cookbooks and no recipes", name)
	}
	return l.build(f, name)
}

// FromMoonshot builds a suite of Moonshot cookbooks and recipes as they
// are, without a suite file: no thresholds, default scorer settings.
func FromMoonshot(fsys fs.FS, name string, cookbooks, recipes []string) (*Suite, error) {
	if len(cookbooks)+len(recipes) == 0 {
		return nil, errors.New("suite: no cookbooks and no recipes")
	}
	l := &loader{fsys: fsys, root: ".", files: map[string][]byte{}}
	return l.build(File{Name: name, Cookbooks: cookbooks, Recipes: recipes}, "")
}

type loader struct {
	fsys  fs.FS
	root  string
	files map[string][]byte
}

// read reads a file of at most max bytes and records it for the lock.
func (l *loader) read(name string, max int64) ([]byte, error) {
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, max)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%s: not UTF-8", name)
	}
	l.files[name] = b
	return b, nil
}

// readImage reads an image input of an image recipe (a PNG or JPEG under
// images/) and records it for the lock.
func (l *loader) readImage(dataset, input string) ([]byte, error) {
	if !imagePattern.MatchString(input) {
		return nil, fmt.Errorf("dataset %s: input %q: an image recipe's input names a .png, .jpg or .jpeg file under %s/", dataset, input, ImageDir)
	}
	name := path.Join(l.root, input)
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: read %s: %w", dataset, name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxImage+1))
	if err != nil {
		return nil, fmt.Errorf("dataset %s: read %s: %w", dataset, name, err)
	}
	if len(b) > MaxImage {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxImage)
	}
	if ImageType(b) == "" {
		return nil, fmt.Errorf("%s: not a PNG or JPEG image", name)
	}
	l.files[name] = b
	return b, nil
}

// ImageType is the media type of a PNG or JPEG image, or "".
func ImageType(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return "image/jpeg"
	}
	return ""
}

// readJSON reads dir/id.json into v, ignoring unknown fields as Moonshot
// does but refusing trailing data.
func (l *loader) readJSON(dir, id string, max int64, v any) (string, error) {
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("%s id %q: want letters, digits, '.', '_' or '-'", dir, id)
	}
	name := path.Join(l.root, dir, id+".json")
	b, err := l.read(name, max)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", fmt.Errorf("%s: data after the object", name)
	}
	return name, nil
}

type cookbookJSON struct {
	ID          *string  `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Recipes     []string `json:"recipes"`
}

type recipeJSON struct {
	ID              *string              `json:"id"`
	Name            string               `json:"name"`
	Description     string               `json:"description"`
	Tags            []string             `json:"tags"`
	Categories      []string             `json:"categories"`
	Datasets        []string             `json:"datasets"`
	PromptTemplates []string             `json:"prompt_templates"`
	Metrics         []string             `json:"metrics"`
	GradingScale    map[string][]float64 `json:"grading_scale"`
}

type datasetJSON struct {
	ID          *string `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	License     string  `json:"license"`
	Reference   string  `json:"reference"`
	Examples    []struct {
		Input  *string         `json:"input"`
		Target json.RawMessage `json:"target"`
	} `json:"examples"`
}

type templateJSON struct {
	ID          *string `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Template    *string `json:"template"`
}

// checkID: a file that states its id must state its file name's.
func checkID(name string, stated *string, id string) error {
	if stated != nil && *stated != id {
		return fmt.Errorf("%s: id %q differs from the file name's %q", name, *stated, id)
	}
	return nil
}

func (l *loader) build(f File, suiteName string) (*Suite, error) {
	s := &Suite{Name: f.Name, Description: f.Description, Datasets: map[string]*Dataset{}, Templates: map[string]*Template{}, Images: map[string][]byte{}}
	imageBytes := 0
	var order []string
	seen := map[string]bool{}
	addRecipe := func(id string) {
		if !seen[id] {
			seen[id] = true
			order = append(order, id)
		}
	}
	for _, id := range f.Cookbooks {
		var cj cookbookJSON
		name, err := l.readJSON(CookbookDir, id, MaxFile, &cj)
		if err != nil {
			return nil, err
		}
		if err := checkID(name, cj.ID, id); err != nil {
			return nil, err
		}
		if len(cj.Recipes) == 0 {
			return nil, fmt.Errorf("%s: recipes is empty", name)
		}
		s.Cookbooks = append(s.Cookbooks, &Cookbook{ID: id, Name: cj.Name, Description: cj.Description, Recipes: cj.Recipes})
		for _, r := range cj.Recipes {
			addRecipe(r)
		}
	}
	for _, id := range f.Recipes {
		addRecipe(id)
	}
	if len(order) > MaxRecipes {
		return nil, fmt.Errorf("suite: %d recipes, at most %d", len(order), MaxRecipes)
	}
	for id := range f.Settings {
		if !seen[id] {
			return nil, fmt.Errorf("%s: settings.%s: the suite runs no such recipe", suiteName, id)
		}
	}
	items := 0
	for _, id := range order {
		r, err := l.recipe(id)
		if err != nil {
			return nil, err
		}
		if set, ok := f.Settings[id]; ok {
			if err := set.validate(suiteName+": settings."+id, r.Metrics); err != nil {
				return nil, err
			}
			r.Settings = set
		}
		for _, d := range r.Datasets {
			if _, ok := s.Datasets[d]; !ok {
				ds, err := l.dataset(d)
				if err != nil {
					return nil, err
				}
				s.Datasets[d] = ds
			}
			items += len(s.Datasets[d].Examples) * max(1, len(r.PromptTemplates))
			if r.Settings.Input != InputImage {
				continue
			}
			for _, e := range s.Datasets[d].Examples {
				if _, ok := s.Images[e.Input]; ok {
					continue
				}
				b, err := l.readImage(d, e.Input)
				if err != nil {
					return nil, err
				}
				if imageBytes += len(b); imageBytes > MaxImagesBytes {
					return nil, fmt.Errorf("suite: images larger than %d bytes in all", MaxImagesBytes)
				}
				s.Images[e.Input] = b
			}
		}
		if r.Settings.Input == InputImage && len(r.PromptTemplates) > 0 {
			return nil, fmt.Errorf("%s: settings.%s.input: an image recipe cannot have prompt templates", suiteName, id)
		}
		for _, t := range r.PromptTemplates {
			if _, ok := s.Templates[t]; !ok {
				tp, err := l.template(t)
				if err != nil {
					return nil, err
				}
				s.Templates[t] = tp
			}
		}
		if items > MaxSuiteSamples {
			return nil, fmt.Errorf("suite: more than %d samples", MaxSuiteSamples)
		}
		s.Recipes = append(s.Recipes, r)
	}
	s.Lock = newLock(l.files)
	return s, nil
}

func (l *loader) recipe(id string) (*Recipe, error) {
	var rj recipeJSON
	name, err := l.readJSON(RecipeDir, id, MaxFile, &rj)
	if err != nil {
		return nil, err
	}
	if err := checkID(name, rj.ID, id); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		field string
		v     []string
		need  bool
	}{{"datasets", rj.Datasets, true}, {"prompt_templates", rj.PromptTemplates, false}, {"metrics", rj.Metrics, true}} {
		if f.need && len(f.v) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", name, f.field)
		}
		if len(f.v) > MaxListed {
			return nil, fmt.Errorf("%s: %s lists more than %d", name, f.field, MaxListed)
		}
		for i, x := range f.v {
			if f.field != "metrics" && !idPattern.MatchString(x) {
				return nil, fmt.Errorf("%s: %s[%d]: %q is not an id", name, f.field, i, x)
			}
		}
	}
	for i, m := range rj.Metrics {
		if !score.Known(m) {
			return nil, fmt.Errorf("%s: metrics[%d]: %q is not a metric Sampan computes", name, i, m)
		}
	}
	gs := score.GradingScale{}
	for g, band := range rj.GradingScale {
		if len(band) != 2 {
			return nil, fmt.Errorf("%s: grading_scale.%s: want [min, max], got %d numbers", name, g, len(band))
		}
		gs[g] = [2]float64{band[0], band[1]}
	}
	if err := gs.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Recipe{ID: id, Name: rj.Name, Description: rj.Description, Tags: rj.Tags, Categories: rj.Categories,
		Datasets: rj.Datasets, PromptTemplates: rj.PromptTemplates, Metrics: rj.Metrics, GradingScale: gs}, nil
}

func (l *loader) dataset(id string) (*Dataset, error) {
	var dj datasetJSON
	name, err := l.readJSON(DatasetDir, id, MaxDatasetFile, &dj)
	if err != nil {
		return nil, err
	}
	if err := checkID(name, dj.ID, id); err != nil {
		return nil, err
	}
	if len(dj.Examples) == 0 {
		return nil, fmt.Errorf("%s: examples is empty", name)
	}
	if len(dj.Examples) > MaxExamples {
		return nil, fmt.Errorf("%s: more than %d examples", name, MaxExamples)
	}
	d := &Dataset{ID: id, Name: dj.Name, Description: dj.Description, License: dj.License, Reference: dj.Reference}
	for i, e := range dj.Examples {
		if e.Input == nil {
			return nil, fmt.Errorf("%s: examples[%d].input is missing", name, i)
		}
		if len(*e.Input) > MaxTextField {
			return nil, fmt.Errorf("%s: examples[%d].input is longer than %d bytes", name, i, MaxTextField)
		}
		ts, err := targets(e.Target)
		if err != nil {
			return nil, fmt.Errorf("%s: examples[%d].target: %w", name, i, err)
		}
		d.Examples = append(d.Examples, Example{Input: *e.Input, Targets: ts})
	}
	return d, nil
}

// targets reads a target as Moonshot datasets write it: a string, a
// number or boolean (taken as written), null (no target), or an array of
// those.
func targets(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '[' {
		var xs []json.RawMessage
		if err := json.Unmarshal(raw, &xs); err != nil {
			return nil, err
		}
		if len(xs) > MaxTargets {
			return nil, fmt.Errorf("more than %d targets", MaxTargets)
		}
		var out []string
		for i, x := range xs {
			t, err := scalar(x)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, t)
		}
		return out, nil
	}
	t, err := scalar(raw)
	if err != nil {
		return nil, err
	}
	return []string{t}, nil
}

func scalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	var t string
	switch {
	case len(raw) > 0 && raw[0] == '"':
		if err := json.Unmarshal(raw, &t); err != nil {
			return "", err
		}
	case string(raw) == "true" || string(raw) == "false":
		t = string(raw)
	default:
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return "", fmt.Errorf("want a string, number, boolean or array of them, got %.20s", raw)
		}
		t = string(raw)
	}
	if len(t) > MaxTextField {
		return "", fmt.Errorf("longer than %d bytes", MaxTextField)
	}
	return t, nil
}

func (l *loader) template(id string) (*Template, error) {
	var tj templateJSON
	name, err := l.readJSON(TemplateDir, id, MaxFile, &tj)
	if err != nil {
		return nil, err
	}
	if err := checkID(name, tj.ID, id); err != nil {
		return nil, err
	}
	if tj.Template == nil {
		return nil, fmt.Errorf("%s: template is missing", name)
	}
	if rest := rePromptVar.ReplaceAllString(*tj.Template, ""); reJinja.MatchString(rest) {
		return nil, fmt.Errorf("%s: template: only {{ prompt }} is supported", name)
	}
	return &Template{ID: id, Name: tj.Name, Description: tj.Description, Template: *tj.Template}, nil
}
