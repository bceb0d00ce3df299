package pii

// Vietnamese citizen identity numbers (số căn cước công dân, CCCD; since
// 2024 số định danh cá nhân) have 12 digits, with no check digit:
//
//	digits 1–3  the province or city of birth registration (Circular
//	            07/2016/TT-BCA; the 63 codes of the provinces before the
//	            2025 merger, which issued numbers keep)
//	digit  4    century and sex: 0/1 born 1900–1999 (male/female),
//	            2/3 born 2000–2099, 4/5 2100–2199, and so on
//	digits 5–6  the last two digits of the year of birth
//	digits 7–12 a serial number
//
// Only centuries 1900–2099 are accepted: no living person has another.

// vnProvinceCodes holds the province codes of citizen identity numbers.
var vnProvinceCodes = map[string]string{
	"001": "Hà Nội", "002": "Hà Giang", "004": "Cao Bằng", "006": "Bắc Kạn",
	"008": "Tuyên Quang", "010": "Lào Cai", "011": "Điện Biên", "012": "Lai Châu",
	"014": "Sơn La", "015": "Yên Bái", "017": "Hòa Bình", "019": "Thái Nguyên",
	"020": "Lạng Sơn", "022": "Quảng Ninh", "024": "Bắc Giang", "025": "Phú Thọ",
	"026": "Vĩnh Phúc", "027": "Bắc Ninh", "030": "Hải Dương", "031": "Hải Phòng",
	"033": "Hưng Yên", "034": "Thái Bình", "035": "Hà Nam", "036": "Nam Định",
	"037": "Ninh Bình", "038": "Thanh Hóa", "040": "Nghệ An", "042": "Hà Tĩnh",
	"044": "Quảng Bình", "045": "Quảng Trị", "046": "Thừa Thiên Huế", "048": "Đà Nẵng",
	"049": "Quảng Nam", "051": "Quảng Ngãi", "052": "Bình Định", "054": "Phú Yên",
	"056": "Khánh Hòa", "058": "Ninh Thuận", "060": "Bình Thuận", "062": "Kon Tum",
	"064": "Gia Lai", "066": "Đắk Lắk", "067": "Đắk Nông", "068": "Lâm Đồng",
	"070": "Bình Phước", "072": "Tây Ninh", "074": "Bình Dương", "075": "Đồng Nai",
	"077": "Bà Rịa – Vũng Tàu", "079": "Hồ Chí Minh", "080": "Long An", "082": "Tiền Giang",
	"083": "Bến Tre", "084": "Trà Vinh", "086": "Vĩnh Long", "087": "Đồng Tháp",
	"089": "An Giang", "091": "Kiên Giang", "092": "Cần Thơ", "093": "Hậu Giang",
	"094": "Sóc Trăng", "095": "Bạc Liêu", "096": "Cà Mau",
}

// CitizenID is the structure read from a citizen identity number.
type CitizenID struct {
	Province  string // province code, three digits
	Female    bool
	BirthYear int
	Serial    string // the last six digits
}

// ParseCitizenID reads a 12-digit Vietnamese citizen identity number and
// reports whether its structure is valid: a known province code, a
// century digit for 1900–2099.
func ParseCitizenID(s string) (CitizenID, bool) {
	if len(s) != 12 {
		return CitizenID{}, false
	}
	for i := 0; i < 12; i++ {
		if s[i] < '0' || s[i] > '9' {
			return CitizenID{}, false
		}
	}
	if _, ok := vnProvinceCodes[s[:3]]; !ok {
		return CitizenID{}, false
	}
	c := int(s[3] - '0')
	if c > 3 {
		return CitizenID{}, false
	}
	year := 1900 + 100*(c/2) + int(s[4]-'0')*10 + int(s[5]-'0')
	return CitizenID{Province: s[:3], Female: c%2 == 1, BirthYear: year, Serial: s[6:]}, true
}

// ValidCitizenID reports whether s is a structurally valid Vietnamese
// citizen identity number.
func ValidCitizenID(s string) bool {
	_, ok := ParseCitizenID(s)
	return ok
}

func (sc Scanner) validCitizenID(s string) bool {
	id, ok := ParseCitizenID(s)
	return ok && (sc.Year == 0 || id.BirthYear <= sc.Year)
}
