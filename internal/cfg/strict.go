package cfg

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
)

// encoding/json accepts a key that matches a field's name in any case and
// lets the last of two equal keys win. Both make a document mean something
// other than what a reader of it sees, so checkKeys refuses them: it walks
// the document's tokens beside the type being decoded and reports, by field
// path, a key given twice in one object (for a struct, also twice in
// different case) and a key that names a field in other case than the
// field's own.

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKeys checks the keys of the JSON document b against type t.
func checkKeys(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return walk(dec, t, "")
}

// walk checks one JSON value. t is the Go type it decodes into, or nil
// when that is not known (an interface, a custom unmarshaler): then only
// exact duplicate keys are refused.
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	t = known(t)
	if d == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	var fields *structFields
	var elem reflect.Type
	switch {
	case t != nil && t.Kind() == reflect.Struct:
		fields = fieldsOf(t)
	case t != nil && t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		at := key
		if path != "" {
			at = path + "." + key
		}
		id := key
		if fields != nil {
			id = fold(key)
		}
		if prev, dup := seen[id]; dup {
			if prev == key {
				return fmt.Errorf("%s: key given twice", at)
			}
			return fmt.Errorf("%s: key duplicates %q (keys are matched without regard to case)", at, prev)
		}
		seen[id] = key
		ft := elem
		if fields != nil {
			var exact bool
			if ft, exact = fields.byName[key]; !exact {
				if name, ok := fields.byFold[id]; ok {
					return fmt.Errorf("%s: key must be written %q, exactly", at, name)
				}
			}
		}
		if err := walk(dec, ft, at); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// known dereferences pointers and returns nil for types whose JSON form
// this walk cannot know.
func known(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
			t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Interface:
			return nil
		default:
			return t
		}
	}
	return nil
}

// fold maps s to one representative of its case-folding class, so that
// two keys encoding/json would match to the same field fold equal.
func fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

type structFields struct {
	byName map[string]reflect.Type // exact JSON name → field type
	byFold map[string]string       // folded name → exact name
}

var fieldCache sync.Map // reflect.Type → *structFields

// fieldsOf lists the JSON names of a struct's fields as encoding/json
// sees them: tag name or field name, embedded structs promoted.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{byName: map[string]reflect.Type{}, byFold: map[string]string{}}
	addFields(f, t, 0)
	fieldCache.Store(t, f)
	return f
}

func addFields(f *structFields, t reflect.Type, depth int) {
	if depth > 8 {
		return
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				addFields(f, et, depth+1)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := f.byName[name]; dup {
			continue
		}
		f.byName[name] = sf.Type
		f.byFold[fold(name)] = name
	}
}

// errKeys reports checkKeys's failure in Decode's words.
func errKeys(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("field %w", err)
}
