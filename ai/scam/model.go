package scam

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/sampan-exchange/sampan/ai/score"
)

// Model versions.
const (
	// V1 is trained on the messages as written.
	V1 = "scam-nb-v1"
	// V2 is trained on the messages plus a diacritic-stripped copy of
	// each Vietnamese one.
	V2 = "scam-nb-v2"
)

// alpha is the additive (Laplace) smoothing of the feature counts.
const alpha = 1.0

// Model is a trained multinomial naive Bayes classifier. Index 0 of its
// pairs is Scam, 1 is Legit.
type Model struct {
	Version string  `json:"version"`
	Alpha   float64 `json:"alpha"`
	// Docs counts the training messages per class.
	Docs [2]int `json:"docs"`
	// Counts counts each feature's occurrences per class.
	Counts map[string][2]int `json:"counts"`
	total  [2]int
}

// Train trains a model of the given version on messages. Training is
// deterministic: the model depends on the multiset of messages only.
func Train(version string, ms []Message) (*Model, error) {
	if version != V1 && version != V2 {
		return nil, fmt.Errorf("train: unknown model version %q", version)
	}
	m := &Model{Version: version, Alpha: alpha, Counts: map[string][2]int{}}
	add := func(text string, c int) {
		m.Docs[c]++
		for _, f := range Features(text) {
			v := m.Counts[f]
			v[c]++
			m.Counts[f] = v
		}
	}
	for _, msg := range ms {
		c := class(msg.Label)
		if c < 0 {
			return nil, fmt.Errorf("train: label %q", msg.Label)
		}
		add(msg.Text, c)
		if version == V2 && msg.Lang == "vi" {
			if s := score.StripDiacritics(msg.Text); s != msg.Text {
				add(s, c)
			}
		}
	}
	if m.Docs[0] == 0 || m.Docs[1] == 0 {
		return nil, errors.New("train: both classes need messages")
	}
	m.sum()
	return m, nil
}

func class(label string) int {
	switch label {
	case Scam:
		return 0
	case Legit:
		return 1
	}
	return -1
}

func (m *Model) sum() {
	m.total = [2]int{}
	for _, v := range m.Counts {
		m.total[0] += v[0]
		m.total[1] += v[1]
	}
}

// Classify returns the label of text and the model's probability that it
// is a scam. Features never seen in training are ignored.
func (m *Model) Classify(text string) (label string, pScam float64) {
	v := float64(len(m.Counts))
	var s [2]float64
	n := float64(m.Docs[0] + m.Docs[1])
	for c := 0; c < 2; c++ {
		s[c] = math.Log(float64(m.Docs[c]) / n)
	}
	for _, f := range Features(text) {
		k, ok := m.Counts[f]
		if !ok {
			continue
		}
		for c := 0; c < 2; c++ {
			s[c] += math.Log((float64(k[c]) + m.Alpha) / (float64(m.total[c]) + m.Alpha*v))
		}
	}
	// P(scam) = 1 / (1 + e^(s1 - s0)).
	p := 1 / (1 + math.Exp(s[1]-s[0]))
	if s[0] >= s[1] {
		return Scam, p
	}
	return Legit, p
}

// Accuracy returns the share of messages the model labels correctly.
func (m *Model) Accuracy(ms []Message) float64 {
	if len(ms) == 0 {
		return 0
	}
	ok := 0
	for _, msg := range ms {
		if l, _ := m.Classify(msg.Text); l == msg.Label {
			ok++
		}
	}
	return float64(ok) / float64(len(ms))
}

// MarshalBinary returns the model's canonical serialisation: JSON with
// the feature counts in key order.
func (m *Model) MarshalBinary() ([]byte, error) {
	return json.Marshal(m)
}

// Digest returns the SHA-256 of the canonical serialisation, in hex:
// the identity of a trained model, for a model card.
func (m *Model) Digest() string {
	b, err := m.MarshalBinary()
	if err != nil {
		return ""
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// MaxModelSize bounds a serialised model Load reads.
const MaxModelSize = 64 << 20

// Load reads a serialised model. If digest is not empty, the model's
// digest must equal it.
func Load(r io.Reader, digest string) (*Model, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxModelSize+1))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if len(b) > MaxModelSize {
		return nil, fmt.Errorf("load model: larger than %d bytes", MaxModelSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Model
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if m.Version != V1 && m.Version != V2 {
		return nil, fmt.Errorf("load model: unknown version %q", m.Version)
	}
	if !(m.Alpha > 0) || m.Docs[0] <= 0 || m.Docs[1] <= 0 {
		return nil, errors.New("load model: alpha and both classes' counts must be positive")
	}
	for f, v := range m.Counts {
		if v[0] < 0 || v[1] < 0 {
			return nil, fmt.Errorf("load model: negative count for %q", f)
		}
	}
	m.sum()
	if digest != "" && m.Digest() != digest {
		return nil, fmt.Errorf("load model: digest %s, want %s", m.Digest(), digest)
	}
	return &m, nil
}
