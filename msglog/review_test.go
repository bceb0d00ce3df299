package msglog

import "testing"

// TestReviewHeadPathQueryAmbiguous: the head joins path and query as
// "PATH?QUERY" on one line, and CheckRequestHead does not refuse a '?'
// in Path, so a record whose path/query split differs from the one the
// consumer signed rebuilds the same head: verify-bundle accepts it as
// signed (a query may hold '?' under RFC 3986).
func TestReviewHeadPathQueryAmbiguous(t *testing.T) {
	t.Skip("finding: Path?Query join is ambiguous in the v2 head; verify-bundle accepts a re-split record")
	signed := headRecord()
	signed.Path, signed.Query = "/companies", "id=1?x=2"
	signed.RequestHeadSHA256 = hexDigest(signed.AppendRequestHead(nil))
	if err := signed.CheckRequestHead(); err != nil {
		t.Fatal(err)
	}
	forged := *signed
	forged.Path, forged.Query = "/companies?id=1", "x=2"
	if err := forged.CheckRequestHead(); err == nil {
		t.Errorf("record claiming path %q query %q accepted under the head the consumer signed for path %q query %q",
			forged.Path, forged.Query, signed.Path, signed.Query)
	}
}
