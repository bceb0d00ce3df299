// Package cfg decodes configuration files and API bodies strictly:
// unknown fields, keys given twice, keys in other case than the field's
// name and trailing data are refused, and durations are written as Go duration
// strings ("60s", "10m").
package cfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"
)

// Duration is a time.Duration written in JSON as a string such as "90s".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"90s\" or \"10m\")", b)
	}
	*d = Duration(v)
	return nil
}

// Decode parses JSON into v, refusing unknown fields, keys given twice in
// one object, keys that match a field only without regard to case, and
// trailing data. The error names the offending field where the decoder can
// tell. On error v may be partly filled.
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Errorf("field %s: cannot use a JSON %s here", ute.Field, ute.Value)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON document")
	}
	if err := checkKeys(b, reflect.TypeOf(v)); err != nil {
		return errKeys(err)
	}
	return nil
}

// Load reads and strictly decodes a JSON configuration file.
func Load(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := Decode(b, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Write stores v as indented JSON with the given mode.
func Write(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), perm)
}
