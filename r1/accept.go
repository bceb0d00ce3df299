package r1

import (
	"strconv"
	"strings"
)

// Format is a body format the gateways can answer in.
type Format int

// The formats: JSON is r1's default, XML what PR-META's listClients
// answers by default and what a client may ask for with Accept.
const (
	FormatJSON Format = iota
	FormatXML
)

// maxAcceptRanges bounds how many media ranges of an Accept header are
// read; the rest are ignored.
const maxAcceptRanges = 32

// Negotiate picks JSON or XML from an Accept header: the one the client
// rates higher, an exact media type taking precedence over a wildcard
// that also covers it; between equal ratings, the one the client names
// rather than reaches by a wildcard ("application/json, */*" is JSON).
// With no preference (no header, "*/*", both or neither named, or
// neither acceptable) it is dflt.
func Negotiate(accept string, dflt Format) Format {
	var qJSON, qXML [2]float64 // [0] from wildcards, [1] from exact types
	var exactJSON, exactXML bool
	for i, r := range strings.Split(accept, ",") {
		if i == maxAcceptRanges {
			break
		}
		media, params, _ := strings.Cut(r, ";")
		media = strings.ToLower(strings.TrimSpace(media))
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				q = f
			}
		}
		switch media {
		case "application/json":
			exactJSON, qJSON[1] = true, max(qJSON[1], q)
		case "application/xml", "text/xml":
			exactXML, qXML[1] = true, max(qXML[1], q)
		case "*/*", "application/*":
			qJSON[0], qXML[0] = max(qJSON[0], q), max(qXML[0], q)
		case "text/*":
			qXML[0] = max(qXML[0], q)
		}
	}
	j, x := qJSON[0], qXML[0]
	if exactJSON {
		j = qJSON[1]
	}
	if exactXML {
		x = qXML[1]
	}
	switch {
	case j > x:
		return FormatJSON
	case x > j:
		return FormatXML
	case j > 0 && exactJSON && !exactXML:
		return FormatJSON
	case x > 0 && exactXML && !exactJSON:
		return FormatXML
	default:
		return dflt
	}
}
