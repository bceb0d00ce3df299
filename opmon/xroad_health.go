package opmon

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/sampan-exchange/sampan/ident"
)

// HealthDataRequest is the body of a getSecurityServerHealthData request.
type HealthDataRequest struct {
	// Client, when not zero, selects the services this member or
	// subsystem offers (X-Road's filterCriteria client).
	Client ident.ClientID
}

// ParseHealthDataRequest reads the getSecurityServerHealthData element
// (the SOAP body's content) from body: an optional filterCriteria with an
// optional client. Decoding is bounded and hardened as
// ParseOperationalDataRequest's; errors of the request wrap
// ErrInvalidRequest.
func ParseHealthDataRequest(body io.Reader) (HealthDataRequest, error) {
	var req HealthDataRequest
	x, err := newBodyDecoder(body)
	if err != nil {
		return req, err
	}
	if err := x.root(HealthDataService); err != nil {
		return req, err
	}
	seq := newSequence(HealthDataService, "filterCriteria")
	for {
		el, ok, err := x.child(HealthDataService, NamespaceOpMonitoring)
		if err != nil {
			return req, err
		}
		if !ok {
			break
		}
		if err := seq.take(el.Name.Local); err != nil {
			return req, err
		}
		if _, err := checkAttrs(el, false); err != nil {
			return req, err
		}
		inner := newSequence("filterCriteria", "client")
		for {
			c, ok, err := x.child("filterCriteria", NamespaceOpMonitoring)
			if err != nil {
				return req, err
			}
			if !ok {
				break
			}
			if err := inner.take(c.Name.Local); err != nil {
				return req, err
			}
			if req.Client, err = x.clientID(c, "filterCriteria.client"); err != nil {
				return req, err
			}
		}
	}
	if err := x.end(); err != nil {
		return req, err
	}
	return req, nil
}

// serviceHealth gathers one service's events of the period.
type serviceHealth struct {
	id                     ident.ServiceID
	serviceType            string
	ok, failed             int64
	lastOK, lastFailed     time.Time // response out
	duration, reqSz, rspSz summary   // of the successful requests
}

// summary is the count, minimum, maximum, sum and sum of squares of a
// series of integers.
type summary struct {
	n, min, max int64
	sum, sumSq  float64
}

func (s *summary) add(v int64) {
	if s.n == 0 || v < s.min {
		s.min = v
	}
	if s.n == 0 || v > s.max {
		s.max = v
	}
	s.n++
	f := float64(v)
	s.sum += f
	s.sumSq += f * f
}

func (s *summary) mean() float64 { return s.sum / float64(s.n) }

// stdDev is the sample standard deviation, 0 for fewer than two values.
func (s *summary) stdDev() float64 {
	if s.n < 2 {
		return 0
	}
	m := s.mean()
	v := (s.sumSq - float64(s.n)*m*m) / float64(s.n-1)
	if v < 0 { // rounding, for equal values
		return 0
	}
	return math.Sqrt(v)
}

// RenderHealthData answers a getSecurityServerHealthData request with the
// getSecurityServerHealthDataResponse element: the store's opening time
// (monitoringStartupTimestamp), the statistics period, and for each
// service this gateway provided during the period (Now − StatisticsPeriod
// to Now, by request-in time; only those req.Client offers when it is
// set): the last successful and unsuccessful request's response time,
// the service type, and the counts of successful and unsuccessful
// requests with, over the successful ones, the minimum, average, maximum
// and sample standard deviation of the duration (response out − request
// in, in ms) and of the request and response sizes (bytes). Services are
// in the order of their identifiers.
func (s *Store) RenderHealthData(ctx context.Context, req HealthDataRequest, opts XRoadOptions) ([]byte, error) {
	if !opts.Restrict.IsZero() {
		// Health data describe every service of the gateway: they are
		// for its owner, not a restricted view.
		return nil, invalid("health data are answered to the gateway's owner only")
	}
	opts = opts.withDefaults()
	services := map[string]*serviceHealth{}
	f := Filter{From: opts.Now.Add(-opts.StatisticsPeriod), To: opts.Now, Side: "provider", Limit: MaxLimit}
	skip := false
	if !req.Client.IsZero() {
		if err := req.Client.Validate(); err != nil {
			return nil, invalid("filterCriteria.client: %v", err)
		}
		// Services belong to subsystems: a member offers none.
		skip = !req.Client.IsSubsystem()
		f.Provider = req.Client.String()
	}
	for !skip {
		p, err := s.Query(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("answer health data: %w", err)
		}
		for i := range p.Records {
			r := &p.Records[i]
			h := services[r.Service]
			if h == nil {
				id, err := ident.ParseService(r.Service)
				if err != nil {
					continue // refused before its service was known
				}
				h = &serviceHealth{id: id}
				services[r.Service] = h
			}
			if t := serviceType(r.Protocol); t != "" {
				h.serviceType = t
			}
			if !r.Succeeded {
				h.failed++
				h.lastFailed = later(h.lastFailed, r.ResponseOutAt)
				continue
			}
			h.ok++
			h.lastOK = later(h.lastOK, r.ResponseOutAt)
			if !r.ResponseOutAt.IsZero() {
				h.duration.add(r.ResponseOutAt.UnixMilli() - r.RequestInAt.UnixMilli())
			}
			h.reqSz.add(r.RequestBytes)
			h.rspSz.add(r.ResponseBytes)
		}
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	keys := make([]string, 0, len(services))
	for k := range services {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var o xmlOut
	o.root("getSecurityServerHealthDataResponse")
	o.int("monitoringStartupTimestamp", s.started.UnixMilli())
	o.int("statisticsPeriodSeconds", int64(opts.StatisticsPeriod/time.Second))
	o.open("servicesEvents")
	for _, k := range keys {
		h := services[k]
		o.open("serviceEvents")
		o.service("service", h.id)
		if !h.lastOK.IsZero() {
			o.int("lastSuccessfulRequestTimestamp", h.lastOK.UnixMilli())
		}
		if !h.lastFailed.IsZero() {
			o.int("lastUnsuccessfulRequestTimestamp", h.lastFailed.UnixMilli())
		}
		if h.serviceType != "" {
			o.elem("om", "serviceType", h.serviceType)
		}
		o.open("lastPeriodStatistics")
		o.int("successfulRequestCount", h.ok)
		o.int("unsuccessfulRequestCount", h.failed)
		for _, st := range []struct {
			name string
			sum  *summary
		}{{"Duration", &h.duration}, {"Size", &h.reqSz}, {"Size", &h.rspSz}} {
			if st.sum.n == 0 {
				continue
			}
			prefix := "request"
			if st.sum == &h.rspSz {
				prefix = "response"
			}
			o.int(prefix+"Min"+st.name, st.sum.min)
			o.double(prefix+"Average"+st.name, st.sum.mean())
			o.int(prefix+"Max"+st.name, st.sum.max)
			o.double(prefix+st.name+"StdDev", st.sum.stdDev())
		}
		o.close("lastPeriodStatistics")
		o.close("serviceEvents")
	}
	o.close("servicesEvents")
	o.close("getSecurityServerHealthDataResponse")
	return o.b.Bytes(), nil
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
