package report

import "testing"

// FuzzCheckContent feeds report files (what Verify reads after the
// signature) to the decoder, the self-check and the views: no input may
// make them panic, and a report that passes the self-check must render.
func FuzzCheckContent(f *testing.F) {
	rep := &Report{Format: Format}
	f.Add([]byte(`{"format":"sampan-ai-report/1"}`))
	if b, err := rep.Marshal(); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"format":"sampan-ai-report/1","recipes":[{"id":"r","metrics":["classification","robust-swaps"],"grading_scale":{"A":[0,100]}}],"samples":[{"id":"s","recipe":"r","input":"x","input_digest":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","calls":[{"role":"variant/swaps","input_digest":"","answer":"a","response_body":"{}"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := decode(b)
		if err != nil {
			return
		}
		if err := checkContent(rep, b); err != nil {
			rep.Views()
			return
		}
		if _, err := rep.Views(); err != nil {
			t.Fatalf("a report that checks does not render: %v", err)
		}
	})
}
