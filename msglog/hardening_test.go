package msglog

import "testing"

// TestHeadPathHoldsNoQuestionMark: the head joins path and query as
// "PATH?QUERY"; a record whose path holds a '?' is refused, so a record
// cannot re-split path and query under the head the consumer signed.
func TestHeadPathHoldsNoQuestionMark(t *testing.T) {
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
