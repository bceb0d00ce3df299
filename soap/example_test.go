package soap_test

import (
	"fmt"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// A request is parsed, its identifiers converted for routing, and a
// refusal answered as a fault in X-Road 7.8's spelling.
func Example() {
	req := []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers">
<s:Header>
 <xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>VN</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>HCMC</id:memberCode><id:subsystemCode>one-stop</id:subsystemCode></xrd:client>
 <xrd:service id:objectType="SERVICE"><id:xRoadInstance>VN</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>MOF</id:memberCode><id:subsystemCode>business-registry</id:subsystemCode><id:serviceCode>companyDetails</id:serviceCode></xrd:service>
 <xrd:id>42</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion>
</s:Header>
<s:Body><c:companyDetails xmlns:c="urn:companies"/></s:Body></s:Envelope>`)
	env, err := soap.ParseRequest(req, soap.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	svc, _ := env.Header.Service.Ident()
	fmt.Println(svc, env.Operation.Name.Local)

	f := soap.NewFault(r1.New(r1.TypeServerAccessDenied, "access denied"), "ex-1", soap.SpellingSnake)
	fmt.Println(f.Code)
	// Output:
	// VN/GOV/MOF/business-registry/companyDetails companyDetails
	// server.serverproxy.access_denied
}
