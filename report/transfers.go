// Package report turns a gateway's message log into the records
// regulators ask for.
package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
)

// Flow is one line of the transfer report: all exchanges between the same
// parties, of the same service, under the same agreement, purpose and
// legal basis, as seen by this gateway. Data goes from the provider
// (sender) to the client (recipient); the request's body goes the other
// way and is counted too.
type Flow struct {
	Gateway          string    `json:"gateway"`
	Side             string    `json:"side"`
	Sender           string    `json:"sender"`
	SenderCountry    string    `json:"sender_country"`
	Recipient        string    `json:"recipient"`
	RecipientCountry string    `json:"recipient_country"`
	CrossBorder      bool      `json:"cross_border"`
	Service          string    `json:"service"`
	DataClass        string    `json:"data_class"`
	DataCategories   []string  `json:"data_categories"`
	Purpose          string    `json:"purpose"`
	LegalBasis       string    `json:"legal_basis"`
	Agreement        string    `json:"agreement"`
	References       []string  `json:"references"`
	RetentionDays    int       `json:"retention_days"`
	PolicyVersions   []string  `json:"policy_versions"`
	Calls            int64     `json:"calls"`
	Refused          int64     `json:"refused"`
	BytesToRecipient int64     `json:"bytes_to_recipient"`
	BytesToSender    int64     `json:"bytes_to_sender"`
	FirstTransfer    time.Time `json:"first_transfer"`
	LastTransfer     time.Time `json:"last_transfer"`
}

// Options select what goes into the report.
type Options struct {
	From, To time.Time
	// Domestic includes flows within the instance; by default only
	// cross-border flows are reported.
	Domestic bool
	IndexDSN string
}

// Transfers builds the report from the log in dir.
func Transfers(ctx context.Context, dir string, o Options) ([]*Flow, error) {
	flows := map[string]*Flow{}
	var order []string
	err := msglog.Records(ctx, dir, o.IndexDSN, o.From, o.To, func(r *msglog.Record) error {
		d := r.Decision
		if d == nil {
			d = &msglog.Decision{}
		}
		client, err := ident.ParseSubsystem(r.Client)
		if err != nil {
			return nil
		}
		svc, err := ident.ParseService(r.Service)
		if err != nil {
			return nil
		}
		xb := client.Instance != svc.Provider.Instance
		if !xb && !o.Domestic {
			return nil
		}
		key := strings.Join([]string{r.Side, r.Client, r.Service, d.Agreement, d.Purpose, d.LegalBasis}, "\x00")
		f := flows[key]
		if f == nil {
			f = &Flow{Gateway: r.Gateway, Side: r.Side, Sender: svc.Provider.String(), SenderCountry: svc.Provider.Instance,
				Recipient: r.Client, RecipientCountry: client.Instance, CrossBorder: xb, Service: r.Service,
				DataClass: d.DataClass, DataCategories: slices.Clone(d.Flags), Purpose: d.Purpose, LegalBasis: d.LegalBasis,
				Agreement: d.Agreement, References: slices.Clone(d.References), RetentionDays: d.RetentionDays}
			if f.References == nil {
				f.References = []string{}
			}
			if f.DataCategories == nil {
				f.DataCategories = []string{}
			}
			flows[key] = f
			order = append(order, key)
		}
		for _, ref := range d.References {
			if !slices.Contains(f.References, ref) {
				f.References = append(f.References, ref)
			}
		}
		if d.PolicyVersion != "" && !slices.Contains(f.PolicyVersions, d.PolicyVersion) {
			f.PolicyVersions = append(f.PolicyVersions, d.PolicyVersion)
		}
		if r.Kind == msglog.KindDenial {
			f.Refused++
			return nil
		}
		f.Calls++
		f.BytesToRecipient += r.ResponseBytes
		f.BytesToSender += r.RequestBytes
		if f.FirstTransfer.IsZero() || r.RequestAt.Before(f.FirstTransfer) {
			f.FirstTransfer = r.RequestAt
		}
		if r.RequestAt.After(f.LastTransfer) {
			f.LastTransfer = r.RequestAt
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Flow, 0, len(order))
	for _, k := range order {
		f := flows[k]
		if f.PolicyVersions == nil {
			f.PolicyVersions = []string{}
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b *Flow) int {
		return strings.Compare(a.Sender+a.Recipient+a.Service, b.Sender+b.Recipient+b.Service)
	})
	return out, nil
}

// CSVHeader is the header line of the CSV form.
var CSVHeader = []string{"gateway", "side", "sender", "sender_country", "recipient", "recipient_country", "cross_border",
	"service", "data_class", "data_categories", "purpose", "legal_basis", "agreement", "references", "retention_days", "policy_versions",
	"calls", "refused", "bytes_to_recipient", "bytes_to_sender", "first_transfer", "last_transfer"}

// WriteCSV writes flows as CSV (RFC 4180), lists joined with ';'.
func WriteCSV(w io.Writer, flows []*Flow) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, f := range flows {
		cw.Write([]string{f.Gateway, f.Side, f.Sender, f.SenderCountry, f.Recipient, f.RecipientCountry, strconv.FormatBool(f.CrossBorder),
			f.Service, f.DataClass, strings.Join(f.DataCategories, ";"), f.Purpose, f.LegalBasis, f.Agreement,
			strings.Join(f.References, ";"), strconv.Itoa(f.RetentionDays), strings.Join(f.PolicyVersions, ";"),
			strconv.FormatInt(f.Calls, 10), strconv.FormatInt(f.Refused, 10), strconv.FormatInt(f.BytesToRecipient, 10), strconv.FormatInt(f.BytesToSender, 10),
			ts(f.FirstTransfer), ts(f.LastTransfer)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes flows as a JSON document.
func WriteJSON(w io.Writer, o Options, flows []*Flow) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"from": o.From.UTC(), "to": o.To.UTC(), "flows": flows})
}
