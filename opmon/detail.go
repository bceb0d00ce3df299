package opmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The detail column holds the fields of a record that no query filters
// on, packed: a version byte (detailVersion), then in this order
// gateway, peer_gateway, request_out_at, response_in_at, response_out_at,
// x_road_id, request_id, user_id, issue, represented_party, protocol,
// method, path, request_bytes, response_bytes, error_message, traceparent
// and the steps. A text is its length (uvarint) and bytes; a byte count a
// uvarint; a time 0 when not reached, else 1 + the zigzag varint of its
// distance in microseconds from the request-in time; the steps their
// count, then each name (a text) and duration (uvarint microseconds).
const detailVersion = 1

func appendText(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time, in int64) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	d := t.UnixMicro() - in
	return binary.AppendUvarint(b, uint64(d<<1^d>>63)+1)
}

// appendDetail appends r's packed detail; in is its request-in time.
func appendDetail(b []byte, r *Record, in int64) []byte {
	b = append(b, detailVersion)
	b = appendText(b, r.Gateway)
	b = appendText(b, r.PeerGateway)
	b = appendTime(b, r.RequestOutAt, in)
	b = appendTime(b, r.ResponseInAt, in)
	b = appendTime(b, r.ResponseOutAt, in)
	for _, s := range [...]string{r.XRoadID, r.RequestID, r.UserID, r.Issue, r.RepresentedParty, r.Protocol, r.Method, r.Path} {
		b = appendText(b, s)
	}
	b = binary.AppendUvarint(b, uint64(max(r.RequestBytes, 0)))
	b = binary.AppendUvarint(b, uint64(max(r.ResponseBytes, 0)))
	b = appendText(b, r.ErrorMessage)
	b = appendText(b, r.Traceparent)
	b = binary.AppendUvarint(b, uint64(len(r.Steps)))
	for _, st := range r.Steps {
		b = appendText(b, st.Name)
		b = binary.AppendUvarint(b, uint64(max(st.Duration.Microseconds(), 0)))
	}
	return b
}

var errDetail = errors.New("stored detail is cut short or damaged")

// detailReader reads a packed detail, remembering the first failure.
type detailReader struct {
	b   []byte
	err error
}

func (d *detailReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errDetail
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int is a uvarint that fits an int64 when multiplied by scale.
func (d *detailReader) int(scale int64) int64 {
	v := d.uvarint()
	if v > uint64(math.MaxInt64/scale) {
		d.err = errDetail
		return 0
	}
	return int64(v)
}

func (d *detailReader) text() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errDetail
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *detailReader) time(in int64) time.Time {
	v := d.uvarint()
	if v == 0 {
		return time.Time{}
	}
	z := v - 1
	return time.UnixMicro(in + (int64(z>>1) ^ -int64(z&1))).UTC()
}

// readDetail fills r's packed fields from b; in is its request-in time.
func readDetail(r *Record, b []byte, in int64) error {
	if len(b) == 0 || b[0] != detailVersion {
		return fmt.Errorf("stored detail: unknown version")
	}
	d := &detailReader{b: b[1:]}
	r.Gateway = d.text()
	r.PeerGateway = d.text()
	r.RequestOutAt, r.ResponseInAt, r.ResponseOutAt = d.time(in), d.time(in), d.time(in)
	for _, p := range [...]*string{&r.XRoadID, &r.RequestID, &r.UserID, &r.Issue, &r.RepresentedParty, &r.Protocol, &r.Method, &r.Path} {
		*p = d.text()
	}
	r.RequestBytes = d.int(1)
	r.ResponseBytes = d.int(1)
	r.ErrorMessage = d.text()
	r.Traceparent = d.text()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each step takes two bytes at least
		return errDetail
	}
	if n > 0 {
		r.Steps = make([]Step, n)
		for i := range r.Steps {
			r.Steps[i] = Step{Name: d.text(), Duration: time.Duration(d.int(int64(time.Microsecond))) * time.Microsecond}
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errDetail
	}
	return nil
}
