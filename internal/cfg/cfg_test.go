package cfg

import (
	"strings"
	"testing"
)

type inner struct {
	Name string `json:"name"`
}

type embedded struct {
	Shared string `json:"shared"`
}

type doc struct {
	embedded
	ID      string            `json:"id"`
	Items   []inner           `json:"items"`
	Ptr     *inner            `json:"ptr"`
	Labels  map[string]string `json:"labels"`
	Free    any               `json:"free"`
	Timeout Duration          `json:"timeout"`
	Plain   int
}

func TestDecodeRefusesAmbiguousKeys(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" means accepted
	}{
		{"exact keys", `{"id":"a","items":[{"name":"x"}],"ptr":{"name":"y"},"labels":{"A":"1","a":"2"},"free":{"k":1},"timeout":"1s","shared":"s","Plain":1}`, ""},
		{"duplicate key", `{"id":"a","id":"b"}`, `field id: key given twice`},
		{"duplicate in case", `{"id":"a","ID":"b"}`, `field ID: key duplicates "id"`},
		{"key in other case", `{"ID":"a"}`, `field ID: key must be written "id", exactly`},
		{"field name in other case", `{"plain":1}`, `field plain: key must be written "Plain", exactly`},
		{"nested in a list", `{"items":[{"name":"x"},{"name":"y","Name":"z"}]}`, `field items[1].Name: key duplicates "name"`},
		{"nested case", `{"items":[{"name":"x"},{"NAME":"y"}]}`, `field items[1].NAME: key must be written "name", exactly`},
		{"through a pointer", `{"ptr":{"Name":"y"}}`, `field ptr.Name: key must be written "name", exactly`},
		{"embedded field", `{"Shared":"s"}`, `field Shared: key must be written "shared", exactly`},
		{"map duplicate", `{"labels":{"a":"1","a":"2"}}`, `field labels.a: key given twice`},
		{"free-form duplicate", `{"free":{"x":{"k":1,"k":2}}}`, `field free.x.k: key given twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			err := Decode([]byte(tc.in), &d)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeTopLevelList(t *testing.T) {
	var v []inner
	err := Decode([]byte(`[{"name":"a"},{"name":"b","name":"c"}]`), &v)
	if err == nil || !strings.Contains(err.Error(), "field [1].name: key given twice") {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeKelvinFoldsLikeEncodingJSON(t *testing.T) {
	// encoding/json matches "\u212a" (Kelvin sign) to a field named "k";
	// the check must see it as the same key.
	var v struct {
		K int `json:"k"`
	}
	err := Decode([]byte("{\"k\":1,\"\u212a\":2}"), &v)
	if err == nil || !strings.Contains(err.Error(), `key duplicates "k"`) {
		t.Fatalf("got %v", err)
	}
}
