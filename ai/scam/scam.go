// Package scam classifies SMS and chat messages, in Vietnamese and
// English, as scam or legitimate: a multinomial naive Bayes model over
// word unigrams, word bigrams and character trigrams, trained
// deterministically from a labelled dataset the project ships
// (data/messages.jsonl, CC0).
//
// Two model versions exist. V1 is trained on the dataset as written,
// where Vietnamese carries its diacritics; it fails on Vietnamese typed
// without them ("khong dau"), because those words were never seen. V2
// adds a diacritic-stripped copy of every Vietnamese training message
// and recovers. The pair is the sandbox's example of a model version
// that fails an evaluation for a real reason.
package scam

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Labels.
const (
	Scam  = "scam"
	Legit = "legit"
)

// Message is one labelled message of the dataset.
type Message struct {
	Text  string `json:"text"`
	Label string `json:"label"` // Scam or Legit
	Lang  string `json:"lang"`  // "vi" or "en"
	// Group names the pattern a message was written from; messages of a
	// group go to the same side of the train/test split, so the test
	// measures messages unlike any the model was trained on.
	Group string `json:"group"`
}

// Limits on a dataset.
const (
	MaxMessages    = 100000
	MaxMessageSize = 16 << 10
)

//go:embed data/messages.jsonl
var shipped []byte

// Dataset returns the shipped dataset.
func Dataset() ([]Message, error) {
	ms, err := ReadMessages(bytes.NewReader(shipped))
	if err != nil {
		return nil, fmt.Errorf("read shipped dataset: %w", err)
	}
	return ms, nil
}

// ReadMessages reads a dataset: one JSON object per line, fields text,
// label, lang and group and no others. Blank lines are skipped. Errors
// name the line.
func ReadMessages(r io.Reader) ([]Message, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxMessageSize+1024)
	var out []Message
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(out) == MaxMessages {
			return nil, fmt.Errorf("line %d: more than %d messages", line, MaxMessages)
		}
		var m Message
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("line %d: data after the object", line)
		}
		switch {
		case strings.TrimSpace(m.Text) == "":
			return nil, fmt.Errorf("line %d: text is empty", line)
		case len(m.Text) > MaxMessageSize:
			return nil, fmt.Errorf("line %d: text longer than %d bytes", line, MaxMessageSize)
		case !utf8.ValidString(m.Text):
			return nil, fmt.Errorf("line %d: text is not UTF-8", line)
		case m.Label != Scam && m.Label != Legit:
			return nil, fmt.Errorf("line %d: label %q is neither %q nor %q", line, m.Label, Scam, Legit)
		case m.Lang != "vi" && m.Lang != "en":
			return nil, fmt.Errorf("line %d: lang %q is neither vi nor en", line, m.Lang)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("read messages: no messages")
	}
	return out, nil
}

// Split divides messages into a training and a test part, by group: a
// group whose FNV-1a hash is 0 modulo 5 is tested on (about a fifth).
// The split depends only on the group names, never on order or chance.
func Split(ms []Message) (train, test []Message) {
	for _, m := range ms {
		h := fnv.New32a()
		h.Write([]byte(m.Group))
		if h.Sum32()%5 == 0 {
			test = append(test, m)
		} else {
			train = append(train, m)
		}
	}
	return train, test
}

// Features returns the features of a text, in order, with repeats:
// the text is put in NFC and lower case and cut into tokens (runs of
// letters and digits; every digit becomes 0, so amounts and codes share
// features); each token gives "w:" and the token, each pair of adjacent
// tokens "b:" and both, and each token's character trigrams (padded
// with ^ and $) "c:" and the trigram.
func Features(text string) []string {
	t := strings.ToLower(norm.NFC.String(text))
	var toks []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			toks = append(toks, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range t {
		switch {
		case unicode.IsDigit(r):
			cur = append(cur, '0')
		case unicode.IsLetter(r) || unicode.Is(unicode.Mn, r):
			cur = append(cur, r)
		default:
			flush()
		}
	}
	flush()
	var out []string
	for i, tok := range toks {
		out = append(out, "w:"+tok)
		if i > 0 {
			out = append(out, "b:"+toks[i-1]+" "+tok)
		}
		p := []rune("^" + tok + "$")
		for j := 0; j+3 <= len(p); j++ {
			out = append(out, "c:"+string(p[j:j+3]))
		}
	}
	return out
}
