// Package ocr reads the text of an image with the tesseract command
// (Debian's tesseract-ocr with its Vietnamese and English models). The
// image goes to tesseract's standard input and the text comes from its
// standard output; no shell and no file is involved.
package ocr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Languages are the tesseract models an image is read with.
var Languages = []string{"vie", "eng"}

// Limits.
const (
	// MaxImage bounds an image's size in bytes.
	MaxImage = 8 << 20
	// MaxText bounds the text read back.
	MaxText = 1 << 20
	// Timeout bounds one recognition.
	Timeout = 30 * time.Second
)

// ErrNotImage is returned for a body that is neither PNG nor JPEG.
var ErrNotImage = errors.New("ocr: the body is not a PNG or JPEG image")

// Engine is an installed tesseract with the models of Languages.
type Engine struct {
	// Path is the tesseract binary.
	Path string
	// Version is tesseract's version ("5.3.0").
	Version string
	// Models maps a language to the SHA-256 (hex) of its traineddata.
	Models map[string]string
}

// Find looks for tesseract on PATH and checks that it has every model
// of Languages; the error says what is missing.
func Find(ctx context.Context) (*Engine, error) {
	bin, err := exec.LookPath("tesseract")
	if err != nil {
		return nil, fmt.Errorf("ocr: tesseract is not installed: %w", err)
	}
	e := &Engine{Path: bin, Models: map[string]string{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ocr: tesseract --version: %w", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if v, ok := strings.CutPrefix(strings.TrimSpace(first), "tesseract "); ok {
		e.Version = strings.TrimPrefix(v, "v")
	} else {
		return nil, fmt.Errorf("ocr: tesseract --version printed %q", first)
	}
	out, err = exec.CommandContext(ctx, bin, "--list-langs").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ocr: tesseract --list-langs: %w", err)
	}
	lines := strings.Split(string(out), "\n")
	// `List of available languages in "/usr/share/tesseract-ocr/5/tessdata/" (3):`
	_, rest, ok := strings.Cut(lines[0], `"`)
	dir, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		return nil, fmt.Errorf("ocr: tesseract --list-langs printed %q", lines[0])
	}
	have := map[string]bool{}
	for _, l := range lines[1:] {
		have[strings.TrimSpace(l)] = true
	}
	for _, lang := range Languages {
		if !have[lang] {
			return nil, fmt.Errorf("ocr: tesseract has no %s model (install tesseract-ocr-%s)", lang, lang)
		}
		b, err := os.ReadFile(filepath.Join(dir, lang+".traineddata"))
		if err != nil {
			return nil, fmt.Errorf("ocr: read the %s model: %w", lang, err)
		}
		sum := sha256.Sum256(b)
		e.Models[lang] = hex.EncodeToString(sum[:])
	}
	return e, nil
}

// Available reports whether tesseract and the models of Languages are
// installed.
func Available() bool {
	_, err := Find(context.Background())
	return err == nil
}

// ModelVersion names the engine and its models:
// "tesseract-5.3.0+vie.<12 hex>+eng.<12 hex>", the hex the start of
// each traineddata file's SHA-256, so another model file is another
// version.
func (e *Engine) ModelVersion() string {
	v := "tesseract-" + e.Version
	for _, lang := range Languages {
		v += "+" + lang + "." + e.Models[lang][:12]
	}
	return v
}

// IsImage reports whether b starts as a PNG or a JPEG does.
func IsImage(b []byte) bool {
	return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff})
}

// Recognize returns the text tesseract reads in a PNG or JPEG image,
// with surrounding space trimmed, within Timeout.
func (e *Engine) Recognize(ctx context.Context, img []byte) (string, error) {
	if len(img) > MaxImage {
		return "", fmt.Errorf("ocr: the image is %d bytes, at most %d", len(img), MaxImage)
	}
	if !IsImage(img) {
		return "", ErrNotImage
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Path, "stdin", "stdout", "-l", strings.Join(Languages, "+"))
	cmd.Stdin = bytes.NewReader(img)
	var out, errb limited
	out.max, errb.max = MaxText, 4096
	cmd.Stdout, cmd.Stderr = &out, &errb
	// Nothing of this process's environment; one thread per
	// recognition, as the service runs requests side by side.
	cmd.Env = []string{"OMP_THREAD_LIMIT=1"}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("ocr: tesseract: %w", ctx.Err())
		}
		return "", fmt.Errorf("ocr: tesseract: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	if out.over {
		return "", fmt.Errorf("ocr: the text is longer than %d bytes", MaxText)
	}
	return strings.TrimSpace(out.String()), nil
}

// limited keeps the first max bytes written to it.
type limited struct {
	bytes.Buffer
	max  int
	over bool
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); len(p) > room {
		l.over = true
		if room > 0 {
			l.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return l.Buffer.Write(p)
}
