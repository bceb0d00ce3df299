package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/opmon"
)

// OpsCmd groups calls to a daemon's operations listener.
type OpsCmd struct {
	Records OpsRecordsCmd `cmd:"" help:"List a gateway's operational-monitoring records, oldest first."`
}

// OpsRecordsCmd reads operational-monitoring records over the operations
// listener's HTTP API (GET <url>/records).
type OpsRecordsCmd struct {
	URL       string `help:"The operations listener's base URL, e.g. http://127.0.0.1:9090." required:""`
	From      string `help:"Only records whose request came in at or after this time (RFC 3339)."`
	To        string `help:"Only records whose request came in before this time (RFC 3339)."`
	Client    string `help:"Only this client (identifier)."`
	Service   string `help:"Only this service (identifier)."`
	Side      string `help:"Only this side: consumer or provider."`
	Status    int    `help:"Only this HTTP status."`
	ErrorType string `help:"Only this error type, e.g. Server.ServerProxy.AccessDenied."`
	Succeeded string `help:"Only succeeded (true) or failed (false) exchanges."`
	Limit     int    `help:"Records a page (1 to 1000); without --all, the one page printed." default:"100"`
	All       bool   `help:"Follow the pages to the last one."`
	Format    string `help:"Output: json or csv." default:"json" enum:"json,csv"`
	TokenFile string `help:"File holding a token sent as Authorization: Bearer, when the listener requires one." type:"existingfile"`
}

// maxPage bounds the answer of one page.
const maxPage = 64 << 20

// Run prints the records to standard output.
func (c *OpsRecordsCmd) Run(g *Globals) error {
	ctx, cancel := signalContext()
	defer cancel()
	return c.run(ctx, os.Stdout)
}

func (c *OpsRecordsCmd) run(ctx context.Context, stdout io.Writer) error {
	base, err := url.Parse(strings.TrimRight(c.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("--url %q: not an http:// or https:// URL", c.URL)
	}
	q := url.Values{}
	for _, f := range []struct{ flag, param, value string }{
		{"from", "from", c.From}, {"to", "to", c.To},
	} {
		if f.value == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, f.value); err != nil {
			return fmt.Errorf("--%s %q: not an RFC 3339 time, e.g. 2026-12-07T10:00:00Z", f.flag, f.value)
		}
		q.Set(f.param, f.value)
	}
	for param, v := range map[string]string{"client": c.Client, "service": c.Service, "side": c.Side, "error_type": c.ErrorType, "succeeded": c.Succeeded} {
		if v != "" {
			q.Set(param, v)
		}
	}
	if c.Status != 0 {
		q.Set("status", strconv.Itoa(c.Status))
	}
	q.Set("limit", strconv.Itoa(c.Limit))
	q.Set("format", c.Format)
	var token string
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	out := bufio.NewWriter(stdout)
	client := &http.Client{Timeout: time.Minute}
	// With --all, JSON is one object holding every page's records, CSV
	// one header row and every page's rows.
	merge := c.All && c.Format == "json"
	if merge {
		out.WriteString(`{"records":[`)
	}
	records := 0
	for pages := 0; ; pages++ {
		u := *base
		u.Path += "/records"
		u.RawQuery = q.Encode()
		body, next, err := getPage(ctx, client, u.String(), token)
		if err != nil {
			return err
		}
		switch {
		case merge:
			var page struct {
				Records []json.RawMessage `json:"records"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return fmt.Errorf("ops records: read the answer of %s: %w", base.Redacted(), err)
			}
			for _, r := range page.Records {
				if records > 0 {
					out.WriteString(",")
				}
				out.Write(r)
				records++
			}
		case pages > 0: // CSV: the header row once
			_, rows, _ := bytes.Cut(body, []byte("\n"))
			out.Write(rows)
		default:
			out.Write(body)
		}
		if !c.All || next == "" {
			break
		}
		if next == q.Get("after") {
			return fmt.Errorf("ops records: %s gave the same page twice", base.Redacted())
		}
		q.Set("after", next)
	}
	if merge {
		out.WriteString("],\"next\":\"\"}\n")
	}
	return out.Flush()
}

// getPage fetches one page, returning its body and the next page's cursor.
func getPage(ctx context.Context, client *http.Client, u, token string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("ops records: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("ops records: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPage+1))
	if err != nil {
		return nil, "", fmt.Errorf("ops records: read the answer: %w", err)
	}
	if len(body) > maxPage {
		return nil, "", fmt.Errorf("ops records: an answer larger than %d MiB", maxPage>>20)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body[:min(len(body), 200)]))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("ops records: the server answered %s: %s", resp.Status, msg)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w (is --token-file right?)", err)
		}
		return nil, "", err
	}
	return body, resp.Header.Get(opmon.NextHeader), nil
}
