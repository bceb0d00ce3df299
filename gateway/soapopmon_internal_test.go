package gateway

import (
	"testing"

	"github.com/sampan-exchange/sampan/opmon"
)

// TestRestrictedInterval: a client other than the gateway's owner asks
// for at most a day of records at a time (its records are found by
// walking the interval); the owner for any interval.
func TestRestrictedInterval(t *testing.T) {
	day := opmon.OperationalDataRequest{RecordsFrom: 1000, RecordsTo: 1000 + maxRestrictedInterval}
	more := opmon.OperationalDataRequest{RecordsFrom: 1000, RecordsTo: 1001 + maxRestrictedInterval}
	if restrictedInterval(false, day) != nil || restrictedInterval(true, more) != nil {
		t.Error("a day for a client, or more for the owner, refused")
	}
	if e := restrictedInterval(false, more); e == nil {
		t.Error("more than a day for a client other than the owner accepted")
	}
}
