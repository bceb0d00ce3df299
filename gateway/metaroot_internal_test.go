package gateway

import (
	"encoding/xml"
	"net/http"
	"testing"
)

// Names in the registry are text: they cannot add elements to
// clientList.
func TestClientListXMLEscapes(t *testing.T) {
	b := clientListXML([]metaClient{{ID: metaID{ObjectType: "MEMBER", Instance: "VN", MemberClass: "GOV", MemberCode: "X"}, Name: `A</xrd:name><xrd:member>&"B'`}})
	var l struct {
		Member []struct {
			Name string `xml:"http://x-road.eu/xsd/xroad.xsd name"`
		} `xml:"http://x-road.eu/xsd/xroad.xsd member"`
	}
	if err := xml.Unmarshal(b, &l); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(l.Member) != 1 || l.Member[0].Name != `A</xrd:name><xrd:member>&"B'` {
		t.Errorf("decoded %+v from %s", l, b)
	}
}

// A gateway of an earlier version may sign User-Agent or Server; the
// service and the client still never get them.
func TestSignedFilteredHeadersNotPassed(t *testing.T) {
	src := http.Header{"User-Agent": {"portal/1 (is-7.internal)"}, "Server": {"registry-7.internal"}, "X-Case": {"1"}}
	names := []string{"server", "user-agent", "x-case"}
	for name, copyFn := range map[string]func(dst, src http.Header, names []string){"to the service": copyNamedAll, "to the client": copyNamed} {
		dst := http.Header{}
		copyFn(dst, src, names)
		if dst.Get("User-Agent") != "" || dst.Get("Server") != "" || dst.Get("X-Case") != "1" {
			t.Errorf("%s: copied %v", name, dst)
		}
	}
}
