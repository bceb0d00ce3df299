package opmon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/opmon"
)

// A gateway answering getSecurityServerOperationalData: the body element
// in, the response element and its attachment out.
func ExampleStore_RenderOperationalData() {
	dir, _ := os.MkdirTemp("", "opmon")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := opmon.Open(ctx, opmon.Options{SQLitePath: filepath.Join(dir, "opmon.db")})
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)

	body := `<om:getSecurityServerOperationalData xmlns:om="http://x-road.eu/xsd/op-monitoring.xsd">
  <om:searchCriteria><om:recordsFrom>1796630400</om:recordsFrom><om:recordsTo>1796634000</om:recordsTo></om:searchCriteria>
</om:getSecurityServerOperationalData>`
	req, err := opmon.ParseOperationalDataRequest(strings.NewReader(body))
	if errors.Is(err, opmon.ErrInvalidRequest) {
		fmt.Println("client fault:", err) // the gateway answers a SOAP fault
		return
	}
	var attachment bytes.Buffer // the MIME part RecordsContentID, RecordsContentType
	resp, err := s.RenderOperationalData(ctx, &attachment, req, opmon.XRoadOptions{Now: time.Unix(1796640000, 0)})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(resp))
	// Output:
	// <om:getSecurityServerOperationalDataResponse xmlns:om="http://x-road.eu/xsd/op-monitoring.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"><om:recordsCount>0</om:recordsCount><om:records>cid:operational-monitoring-data.json.gz</om:records></om:getSecurityServerOperationalDataResponse>
}
