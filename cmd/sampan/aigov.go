package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/sampan-exchange/sampan/ai/report"
	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
)

// AIRegisterCmd registers an AI service.
type AIRegisterCmd struct {
	authorityAPI
	File string `help:"The registration: {id, model_card, risk_classification} (docs/ai-governance.md)." required:"" type:"existingfile"`
}

// Run registers the service.
func (c *AIRegisterCmd) Run(g *Globals) error {
	ctx, cancel := apiContext()
	defer cancel()
	return c.run(ctx, os.Stdout)
}

func (c *AIRegisterCmd) run(ctx context.Context, w io.Writer) error {
	b, err := os.ReadFile(c.File)
	if err != nil {
		return err
	}
	var in authority.AIServiceInput
	if err := cfg.Decode(b, &in); err != nil {
		return fmt.Errorf("%s: %w", c.File, err)
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	if err := api.PutAIService(ctx, in); err != nil {
		return err
	}
	fmt.Fprintf(w, "registered %s, model %s, %s risk (classified for %s)\n", in.ID, in.ModelCard.ModelVersion, in.Classification.Tier, in.Classification.ModelVersion)
	return nil
}

// AISubmitReportCmd submits a report directory.
type AISubmitReportCmd struct {
	authorityAPI
	Dir string `arg:"" help:"The report directory sampan ai evaluate wrote." type:"existingdir"`
}

// Run submits the report.
func (c *AISubmitReportCmd) Run(g *Globals) error {
	ctx, cancel := apiContext()
	defer cancel()
	return c.run(ctx, os.Stdout)
}

func (c *AISubmitReportCmd) run(ctx context.Context, w io.Writer) error {
	var in authority.ReportSubmission
	var sig, signer []byte
	for _, f := range []struct {
		name string
		to   *[]byte
	}{{report.ReportFile, &in.Report}, {report.SignatureFile, &sig}, {report.SignerFile, &signer}, {report.TokenFile, &in.Timestamp}} {
		b, err := os.ReadFile(filepath.Join(c.Dir, f.name))
		if err != nil {
			return err
		}
		*f.to = b
	}
	in.Signature, in.Signer = string(sig), string(signer)
	api, err := c.client()
	if err != nil {
		return err
	}
	acc, err := api.SubmitAIReport(ctx, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "accepted report %s: model %s, signed by %s, grade %s\n", acc.Digest, acc.ModelVersion, acc.Signer, acc.Grade)
	return nil
}

// AIWithdrawReportCmd withdraws an accepted report.
type AIWithdrawReportCmd struct {
	authorityAPI
	Digest string `arg:"" help:"The report's SHA-256, as submit-report and services print it."`
	Reason string `help:"Why the report is withdrawn (kept in the registry and the audit log)." required:""`
}

// Run withdraws the report.
func (c *AIWithdrawReportCmd) Run(g *Globals) error {
	ctx, cancel := apiContext()
	defer cancel()
	return c.run(ctx, os.Stdout)
}

func (c *AIWithdrawReportCmd) run(ctx context.Context, w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	r, err := api.WithdrawAIReport(ctx, c.Digest, c.Reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "withdrew report %s (model %s, signed by %s) at %s: %s\n", r.Digest, r.ModelVersion, r.Signer, r.Withdrawn.At.Format(time.RFC3339), r.Withdrawn.Reason)
	return nil
}

// AIServicesCmd lists the AI registry.
type AIServicesCmd struct {
	authorityAPI
}

// Run lists the services.
func (c *AIServicesCmd) Run(g *Globals) error {
	ctx, cancel := apiContext()
	defer cancel()
	return c.run(ctx, os.Stdout)
}

func (c *AIServicesCmd) run(ctx context.Context, w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	reg, err := api.AIServices(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tMODEL\tTIER\tCLASSIFIED\tEVALUATED")
	for _, s := range reg.Services {
		ev := "no"
		if s.Evaluated != "" {
			ev = s.Evaluated[:16] + " by " + s.EvaluatedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s for %s\t%s\n", s.ID, s.ModelCard.ModelVersion, s.Tier, s.Classification.ClassifiedOn, s.Classification.ModelVersion, ev)
	}
	tw.Flush()
	fmt.Fprintf(w, "testing bodies: %v\n", reg.TestingBodies)
	return nil
}

// AITestingBodiesCmd sets the accredited testing bodies.
type AITestingBodiesCmd struct {
	authorityAPI
	Members []string `arg:"" optional:"" help:"The members accredited (none: no testing body)."`
}

// Run sets them.
func (c *AITestingBodiesCmd) Run(g *Globals) error {
	ctx, cancel := apiContext()
	defer cancel()
	in := authority.TestingBodiesInput{Members: []ident.ClientID{}}
	for _, m := range c.Members {
		id, err := ident.ParseMember(m)
		if err != nil {
			return err
		}
		in.Members = append(in.Members, id)
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	return api.PutAITestingBodies(ctx, in)
}

// AIModelCardCmd exports a registered AI service's model card.
type AIModelCardCmd struct {
	authorityAPI
	ID     string `help:"The AI service." required:""`
	Format string `help:"huggingface (a README.md model card) or cyclonedx (an ML-BOM, JSON)." default:"huggingface" enum:"huggingface,cyclonedx"`
}

// Run prints the card.
func (c *AIModelCardCmd) Run(g *Globals) error {
	ctx, cancel := apiContext()
	defer cancel()
	return c.run(ctx, os.Stdout)
}

func (c *AIModelCardCmd) run(ctx context.Context, w io.Writer) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	s, err := api.AIService(ctx, c.ID)
	if err != nil {
		return err
	}
	if c.Format == "cyclonedx" {
		b, err := s.CycloneDX()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err = w.Write(s.HuggingFaceCard())
	return err
}
