package soap

import "testing"

// BenchmarkParse parses the test request with its extensions.
func BenchmarkParse(b *testing.B) {
	req := []byte(request)
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := Parse(req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
