package gateway

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strconv"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// The namespaces of PR-META's XML answers: the X-Road message schema's,
// and its identifiers'.
const (
	nsXRoad       = "http://x-road.eu/xsd/xroad.xsd"
	nsIdentifiers = "http://x-road.eu/xsd/identifiers"
)

// serveRootMeta answers PR-META's listClients and listCentralServices at
// the client side's root, as X-Road security servers do: a plain GET,
// with no client identifier, for the gateway's own instance or, with
// the query parameter xRoadInstance, a federated one. listClients
// answers in XML unless Accept prefers JSON; listCentralServices always
// in XML (PR-MREST §3). Sampan has no central services: its list is
// empty.
func (g *Gateway) serveRootMeta(w http.ResponseWriter, r *http.Request, meta string) {
	f := errorFormat(r)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r1.WriteAs(w, r1.New(r1.TypeInvalidRequest, "%s answers GET only, not %s", meta, r.Method), r1.NewID(), f)
		return
	}
	q := r.URL.Query()
	if len(q["xRoadInstance"]) > 1 {
		r1.WriteAs(w, r1.New(r1.TypeInvalidRequest, "query parameter xRoadInstance appears more than once"), r1.NewID(), f)
		return
	}
	st, e := g.serving(clientSide)
	if e != nil {
		r1.WriteAs(w, e, r1.NewID(), f)
		return
	}
	inst := st.cfg.Instance
	if v := q.Get("xRoadInstance"); v != "" {
		if ident.ValidateInstance(v) != nil {
			r1.WriteAs(w, r1.New(r1.TypeInvalidRequest, "query parameter xRoadInstance is not a valid instance code"), r1.NewID(), f)
			return
		}
		inst = v
	}
	lst, e := g.confFor(inst, clientSide)
	if e != nil {
		r1.WriteAs(w, e, r1.NewID(), f)
		return
	}
	if meta == r1.MetaListCentralServices {
		writeXML(w, centralServiceListXML())
		return
	}
	writeClientList(w, clientList(lst), r1.Negotiate(r.Header.Get("Accept"), r1.FormatXML))
}

// writeClientList writes a client list in PR-META's JSON or XML shape.
func writeClientList(w http.ResponseWriter, list []metaClient, f r1.Format) {
	if f == r1.FormatXML {
		writeXML(w, clientListXML(list))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Member []metaClient `json:"member"`
	}{Member: list})
}

// clientListXML renders a client list as PR-META's clientList element.
func clientListXML(list []metaClient) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<xrd:clientList xmlns:xrd="` + nsXRoad + `" xmlns:id="` + nsIdentifiers + `">` + "\n")
	for _, m := range list {
		b.WriteString(`<xrd:member><xrd:id id:objectType="` + m.ID.ObjectType + `">`)
		xmlElem(&b, "id:xRoadInstance", m.ID.Instance)
		xmlElem(&b, "id:memberClass", m.ID.MemberClass)
		xmlElem(&b, "id:memberCode", m.ID.MemberCode)
		if m.ID.SubsystemCode != "" {
			xmlElem(&b, "id:subsystemCode", m.ID.SubsystemCode)
		}
		b.WriteString(`</xrd:id>`)
		if m.Name != "" {
			xmlElem(&b, "xrd:name", m.Name)
		}
		b.WriteString("</xrd:member>\n")
	}
	b.WriteString("</xrd:clientList>\n")
	return b.Bytes()
}

// centralServiceListXML renders PR-META's centralServiceList, empty.
func centralServiceListXML() []byte {
	return []byte(xml.Header + `<xrd:centralServiceList xmlns:xrd="` + nsXRoad + `" xmlns:id="` + nsIdentifiers + `"/>` + "\n")
}

func xmlElem(b *bytes.Buffer, name, text string) {
	b.WriteString("<" + name + ">")
	xml.EscapeText(b, []byte(text))
	b.WriteString("</" + name + ">")
}

// writeXML answers 200 with an XML document, as text/xml (PR-META §2).
func writeXML(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
