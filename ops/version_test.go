package ops

import (
	"runtime"
	"testing"
)

// TestBuildInfo: every registry carries sampan_build_info with the
// running Go version.
func TestBuildInfo(t *testing.T) {
	reg := NewRegistry()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "sampan_build_info" {
			continue
		}
		found = true
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["go_version"] != runtime.Version() || labels["version"] == "" {
			t.Errorf("sampan_build_info = %v %v", m.GetGauge().GetValue(), labels)
		}
	}
	if !found {
		t.Fatal("no sampan_build_info")
	}
}
