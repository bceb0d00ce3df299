package pii_test

import (
	"fmt"
	"testing"

	"github.com/sampan-exchange/sampan/ai/pii"
)

func ExampleFind() {
	for _, f := range pii.Find("CCCD 079203001234, NRIC S1234567D, gọi 0912 345 678 hoặc lan@example.vn") {
		fmt.Println(f.Kind, f.Text)
	}
	// Output:
	// vn-citizen-id 079203001234
	// sg-nric S1234567D
	// vn-phone 0912 345 678
	// email lan@example.vn
}

func BenchmarkFind(b *testing.B) {
	text := "Kính gửi anh Minh, số CCCD 079203001234 và NRIC S1234567D đã được ghi nhận; liên hệ 0912 345 678, +65 9123 4567 hoặc lan@example.vn."
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		pii.Find(text)
	}
}
