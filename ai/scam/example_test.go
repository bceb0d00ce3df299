package scam_test

import (
	"fmt"
	"testing"

	"github.com/sampan-exchange/sampan/ai/scam"
)

func ExampleModel_Classify() {
	msgs, _ := scam.Dataset()
	m, _ := scam.Train(scam.V2, msgs)
	label, _ := m.Classify("Tài khoản của quý khách bị tạm khóa, xác thực ngay tại http://abc.top và nhập mã OTP")
	fmt.Println(m.Version, label)
	// Output: scam-nb-v2 scam
}

func BenchmarkClassify(b *testing.B) {
	msgs, _ := scam.Dataset()
	m, _ := scam.Train(scam.V2, msgs)
	text := "Chúc mừng quý khách đã trúng thưởng 2.500.000đ, nhấn vào đường dẫn và nhập mã OTP để nhận quà."
	for b.Loop() {
		m.Classify(text)
	}
}
