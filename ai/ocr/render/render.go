// Package render draws known text into PNG images, deterministically,
// for evaluating OCR: the same text, font and options give the same
// bytes. Fonts are TrueType or OpenType files read with golang.org/x/image.
package render

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// DejaVuSans is where Debian's fonts-dejavu-core puts DejaVu Sans, a
// font with every Vietnamese letter.
const DejaVuSans = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

// Font is a parsed font.
type Font struct{ f *opentype.Font }

// LoadFont reads a TrueType or OpenType file.
func LoadFont(path string) (*Font, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("render: read the font: %w", err)
	}
	f, err := opentype.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("render: parse the font %s: %w", path, err)
	}
	return &Font{f: f}, nil
}

// Missing returns the runes of s the font has no glyph for.
func (f *Font) Missing(s string) []rune {
	var out []rune
	for _, r := range s {
		if r == ' ' || r == '\n' {
			continue
		}
		if i, err := f.f.GlyphIndex(nil, r); err != nil || i == 0 {
			out = append(out, r)
		}
	}
	return out
}

// Options say how to draw.
type Options struct {
	// Size is the font size in pixels (default 32).
	Size float64
	// Margin is the blank border in pixels (default 24).
	Margin int
}

// PNG draws text (lines separated by "\n") black on white and encodes
// it as a grey PNG.
func (f *Font) PNG(text string, o Options) ([]byte, error) {
	if o.Size == 0 {
		o.Size = 32
	}
	if o.Margin == 0 {
		o.Margin = 24
	}
	if miss := f.Missing(text); len(miss) > 0 {
		return nil, fmt.Errorf("render: the font has no glyph for %q", string(miss))
	}
	face, err := opentype.NewFace(f.f, &opentype.FaceOptions{Size: o.Size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	defer face.Close()
	m := face.Metrics()
	lineH := (m.Height * 3 / 2).Ceil()
	lines := strings.Split(text, "\n")
	d := &font.Drawer{Face: face, Src: image.NewUniform(color.Black)}
	w := 0
	for _, l := range lines {
		w = max(w, d.MeasureString(l).Ceil())
	}
	img := image.NewGray(image.Rect(0, 0, w+2*o.Margin, len(lines)*lineH+2*o.Margin))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	d.Dst = img
	for i, l := range lines {
		d.Dot = fixed.P(o.Margin, o.Margin+i*lineH+m.Ascent.Ceil())
		d.DrawString(l)
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("render: encode: %w", err)
	}
	return buf.Bytes(), nil
}
