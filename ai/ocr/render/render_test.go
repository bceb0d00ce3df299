package render_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sampan-exchange/sampan/ai/ocr/render"
)

var update = flag.Bool("update", false, "write the suite's images")

// SuiteDir is the OCR suite whose images are rendered from its targets.
const suiteDir = "../../suite/testdata/ocr-vi-en"

// Font loads DejaVu Sans, skipping the test when it is absent unless
// SAMPAN_REQUIRE_TESSERACT=1 (CI installs fonts-dejavu-core with
// tesseract).
func Font(t *testing.T) *render.Font {
	t.Helper()
	f, err := render.LoadFont(render.DejaVuSans)
	if err != nil {
		if os.Getenv("SAMPAN_REQUIRE_TESSERACT") == "1" {
			t.Fatalf("SAMPAN_REQUIRE_TESSERACT=1 but: %v", err)
		}
		t.Skipf("no font (install fonts-dejavu-core): %v", err)
	}
	return f
}

func TestVietnameseCoverage(t *testing.T) {
	f := Font(t)
	all := "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
	if m := f.Missing(all + string(bytes.ToUpper([]byte(all)))); len(m) > 0 {
		t.Fatalf("DejaVu Sans lacks %q", string(m))
	}
	if m := f.Missing("ệ\u4e2d"); string(m) != "\u4e2d" {
		t.Fatalf("Missing = %q, want the CJK letter only", string(m))
	}
}

// TestSuiteImages checks that each image of the OCR suite is the
// rendering of its target, byte for byte: rendering is deterministic
// (the images were drawn by an earlier run) and the images are what the
// dataset says.
func TestSuiteImages(t *testing.T) {
	f := Font(t)
	var ds struct {
		Examples []struct{ Input, Target string } `json:"examples"`
	}
	b, err := os.ReadFile(filepath.Join(suiteDir, "datasets", "ocr-vi-en.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	for _, e := range ds.Examples {
		img, err := f.PNG(e.Target, render.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(suiteDir, e.Input)
		if *update {
			if err := os.WriteFile(p, img, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, img) {
			t.Errorf("%s is not the rendering of %q (rerun with -update)", e.Input, e.Target)
		}
	}
}
