package suite

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func ocrSuite(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata/ocr-vi-en"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("testdata/ocr-vi-en/" + p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestImageRecipe: an image recipe's items carry the images their
// inputs name, and the lock covers the images.
func TestImageRecipe(t *testing.T) {
	m := ocrSuite(t)
	s, err := Load(m, "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	items := s.Items(s.Recipes[0])
	if len(items) != 12 {
		t.Fatalf("%d items, want 12", len(items))
	}
	for _, it := range items {
		if it.ImageType != "image/png" || string(it.Image) != string(m[it.Prompt].Data) {
			t.Fatalf("item %s: image %q of %d bytes, not %s", it.ID, it.ImageType, len(it.Image), it.Prompt)
		}
	}
	if _, ok := s.Lock.Files["images/vi-01.png"]; !ok {
		t.Fatalf("the lock does not cover the images: %v", s.Lock.Files)
	}
	edited := fstest.MapFS{}
	for k, v := range m {
		edited[k] = v
	}
	img := append([]byte(nil), m["images/vi-01.png"].Data...)
	img[len(img)-20] ^= 1
	edited["images/vi-01.png"] = &fstest.MapFile{Data: img}
	if err := s.Lock.Verify(edited); err == nil || !strings.Contains(err.Error(), "images/vi-01.png") {
		t.Fatalf("an edited image passed the lock: %v", err)
	}
}

func TestImageRecipeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"escape", "datasets/ocr-vi-en.json", `{"examples": [{"input": "../suite.json", "target": "x"}]}`, "names a .png"},
		{"not an image", "datasets/ocr-vi-en.json", `{"examples": [{"input": "images/x.png", "target": "x"}]}`, "not a PNG or JPEG"},
		{"missing", "datasets/ocr-vi-en.json", `{"examples": [{"input": "images/none.png", "target": "x"}]}`, "images/none.png"},
		{"input kind", "suite.json", `{"name": "x", "recipes": ["ocr-vi-en"], "settings": {"ocr-vi-en": {"input": "audio"}}}`, `settings.ocr-vi-en.input: "audio"`},
		{"robust", "recipes/ocr-vi-en.json", `{"datasets": ["ocr-vi-en"], "metrics": ["cer", "wer", "robust-upper"]}`, "cannot use the metric robust-upper"},
		{"template", "recipes/ocr-vi-en.json", `{"datasets": ["ocr-vi-en"], "prompt_templates": ["t"], "metrics": ["cer", "wer"]}`, "cannot have prompt templates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ocrSuite(t)
			m[tc.file] = &fstest.MapFile{Data: []byte(tc.content)}
			m["images/x.png"] = &fstest.MapFile{Data: []byte("GIF89a")}
			m["prompt-templates/t.json"] = &fstest.MapFile{Data: []byte(`{"template": "{{ prompt }}"}`)}
			_, err := Load(m, "suite.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
