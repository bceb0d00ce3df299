package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/opmon"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// serveSOAPMonitoring answers PR-OPMON's getSecurityServerOperationalData
// and getSecurityServerHealthData for this gateway, from its monitoring
// records, to a client it serves: the service must be its owner's (a
// member) and securityServer, when given, this gateway. The owner's
// subsystems read every record; another client only those of its own
// exchanges (as client or as provider). The operational data travel as
// the answer's gzip-compressed JSON attachment, as X-Road collectors
// expect.
func (g *Gateway) serveSOAPMonitoring(w http.ResponseWriter, r *http.Request, o *outcome, env *soap.Envelope, part []byte) {
	fail := func(e *r1.Error) {
		o.refuse(e)
		g.writeFault(w, e, o.requestID)
	}
	h := env.Header
	client, err := h.Client.Ident()
	if err != nil || !client.IsSubsystem() {
		fail(r1.New(r1.TypeInvalidClientID, "the client must be a subsystem"))
		return
	}
	owner, _ := h.Service.Provider().Ident()
	o.identify(client, ident.ServiceID{Provider: owner, Code: h.Service.Service})
	st, e := g.serving(clientSide)
	if e != nil {
		fail(e)
		return
	}
	switch {
	case client.Instance != st.cfg.Instance || !st.cfg.HasSubsystem(client):
		fail(r1.New(r1.TypeUnknownClient, "client %s is not a registered subsystem", client))
		return
	case !st.cfg.Serves(g.keys.Load().authFP, client):
		fail(r1.New(r1.TypeClientNotHosted, "client %s is not served by gateway %s", client, g.cfg.ID))
		return
	}
	if e := g.checkConnection(r, client); e != nil {
		fail(e)
		return
	}
	self := g.cfg.ID
	if h.SecurityServer != nil {
		if target, err := h.SecurityServer.Ident(); err != nil || target != self {
			fail(r1.New(r1.TypeUnknownService, "this gateway, %s, answers monitoring requests for itself only: send them to the client side of the gateway named in securityServer", self))
			return
		}
	}
	selfOwner := ident.ClientID{Instance: self.Instance, Class: self.Class, Code: self.Code}
	if owner != selfOwner {
		fail(r1.New(r1.TypeUnknownService, "service %s/%s: this gateway's monitoring services belong to its owner, %s", owner, h.Service.Service, selfOwner))
		return
	}
	if g.opmon == nil {
		fail(r1.New(r1.TypeUnknownService, "gateway %s keeps no monitoring records (monitoring.records is off)", self))
		return
	}
	body, err := env.OperationXML(part)
	if err != nil {
		fail(asR1(err, soap.TypeInvalidBody, "cannot read the request body"))
		return
	}
	opts := opmon.XRoadOptions{Now: g.now()}
	isOwner := client.Member() == selfOwner
	if !isOwner {
		opts.Restrict = client
	}
	invalid := func(err error) *r1.Error {
		if errors.Is(err, opmon.ErrInvalidRequest) {
			return r1.New(r1.TypeInvalidRequest, "%s", err.Error())
		}
		o.log.Warn("monitoring request failed", "err", err)
		return r1.New(r1.TypeClientInternal, "the monitoring records cannot be read")
	}
	ctx := r.Context()
	var out bytes.Buffer
	ct := soap.ContentTypeSOAP
	switch h.Service.Service {
	case soap.OpOperationalData:
		req, err := opmon.ParseOperationalDataRequest(bytes.NewReader(body))
		if err != nil {
			fail(invalid(err))
			return
		}
		if e := restrictedInterval(isOwner, req); e != nil {
			fail(e)
			return
		}
		var att bytes.Buffer
		el, err := g.opmon.RenderOperationalData(ctx, &att, req, opts)
		if err != nil {
			fail(invalid(err))
			return
		}
		resp, err := monitoringAnswer(part, env, el)
		if err != nil {
			fail(asR1(err, r1.TypeClientInternal, "cannot build the answer"))
			return
		}
		mw := soap.NewMultipartWriter(&out)
		ct = mw.ContentType()
		err = mw.WriteSOAP(resp)
		if err == nil {
			err = mw.WriteAttachment(soap.Attachment{ContentID: opmon.RecordsContentID, ContentType: opmon.RecordsContentType, Body: &att})
		}
		if err == nil {
			err = mw.Close()
		}
		if err != nil {
			fail(r1.Wrap(err, r1.TypeClientInternal, "cannot build the answer"))
			return
		}
	default: // health data
		if !isOwner {
			// Health data describe every service of the gateway: its
			// owner's, as in X-Road.
			fail(r1.New(r1.TypeInvalidRequest, "health data are answered to the subsystems of the gateway's owner, %s", selfOwner))
			return
		}
		req, err := opmon.ParseHealthDataRequest(bytes.NewReader(body))
		if err != nil {
			fail(invalid(err))
			return
		}
		el, err := g.opmon.RenderHealthData(ctx, req, opts)
		if err != nil {
			fail(invalid(err))
			return
		}
		resp, err := monitoringAnswer(part, env, el)
		if err != nil {
			fail(asR1(err, r1.TypeClientInternal, "cannot build the answer"))
			return
		}
		out.Write(resp)
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(out.Len()))
	w.Header().Set(r1.HeaderRequestID, o.requestID)
	o.status, o.respBytes = http.StatusOK, int64(out.Len())
	w.WriteHeader(http.StatusOK)
	w.Write(out.Bytes())
}

// maxRestrictedInterval bounds the interval a client other than the
// gateway's owner asks operational data for: its records are found by
// walking the interval's (the time index), so one request costs at most
// a day of the gateway's records.
const maxRestrictedInterval = 24 * 60 * 60

func restrictedInterval(owner bool, req opmon.OperationalDataRequest) *r1.Error {
	if !owner && req.RecordsTo-req.RecordsFrom > maxRestrictedInterval {
		return r1.New(r1.TypeInvalidRequest, "searchCriteria: a client other than the gateway's owner asks for at most %d seconds of records at a time", maxRestrictedInterval)
	}
	return nil
}

// monitoringAnswer is the SOAP part of a monitoring answer: the request's
// header echoed around the body element el, with requestHash, as every
// answer a client gets from its gateway carries.
func monitoringAnswer(part []byte, env *soap.Envelope, el []byte) ([]byte, error) {
	resp, err := soap.Response(part, env, el)
	if err != nil {
		return nil, err
	}
	hash, err := soap.HashRequest(part, soap.DigestSHA512)
	if err != nil {
		return nil, err
	}
	return soap.InsertRequestHash(resp, hash, soap.DigestSHA512)
}
