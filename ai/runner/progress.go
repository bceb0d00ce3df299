package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// A progress file is JSON lines: a header naming the suite digest, the
// service and the client, then one finished sample per line. A line cut
// short by a crash is dropped on the next open.
type progress struct {
	f       *os.File
	started time.Time
}

func openProgress(path string, h header) (*progress, map[string]Sample, error) {
	done := map[string]Sample{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("progress file: %w", err)
		}
		line, _ := json.Marshal(h)
		if _, err := f.Write(append(line, '\n')); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("progress file: %w", err)
		}
		return &progress{f: f, started: h.Started}, done, nil
	case err != nil:
		return nil, nil, fmt.Errorf("progress file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	var got header
	good := 0 // bytes of whole lines
	for n := 0; sc.Scan(); n++ {
		line := sc.Bytes()
		if n == 0 {
			if err := json.Unmarshal(line, &got); err != nil {
				return nil, nil, fmt.Errorf("progress file %s: the first line is not a header: %w", path, err)
			}
			switch {
			case got.Suite != h.Suite:
				return nil, nil, fmt.Errorf("progress file %s: the suite has changed since the run began (suite digest %s, the run's %s); remove the file to start again", path, h.Suite, got.Suite)
			case got.Service != h.Service || got.Client != h.Client:
				return nil, nil, fmt.Errorf("progress file %s belongs to a run of %s as %s, not %s as %s", path, got.Service, got.Client, h.Service, h.Client)
			}
		} else {
			var s Sample
			if err := json.Unmarshal(line, &s); err != nil {
				break // a line cut short: resume from here
			}
			done[s.ID] = s
		}
		good += len(line) + 1
	}
	newline := false
	if good > len(b) { // the last line is whole but lost its newline
		good, newline = len(b), true
	}
	if err := os.Truncate(path, int64(good)); err != nil {
		return nil, nil, fmt.Errorf("progress file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("progress file: %w", err)
	}
	if newline {
		if _, err := f.Write([]byte{'\n'}); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("progress file: %w", err)
		}
	}
	return &progress{f: f, started: got.Started}, done, nil
}

// add appends a finished sample and syncs it.
func (p *progress) add(s Sample) error {
	line, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := p.f.Write(append(line, '\n')); err != nil {
		return err
	}
	return p.f.Sync()
}

func (p *progress) close() error { return p.f.Close() }
