package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/sampan-exchange/sampan/authority"
)

// AuthorityRotateCmd groups the rotation steps of the
// configuration-signing key and of the instance CA.
type AuthorityRotateCmd struct {
	Status  RotateStatusCmd  `cmd:"" help:"Show where the rotations stand and when the next step is allowed."`
	ConfKey RotateConfKeyCmd `cmd:"" name:"conf-key" help:"Rotate the configuration-signing key: prepare, then activate, then retire."`
	CA      RotateCACmd      `cmd:"" name:"ca" help:"Rotate the instance CA: prepare, then activate, then retire."`
}

// RotateStatusCmd prints the rotation status.
type RotateStatusCmd struct {
	authorityAPI
}

// Run prints the status as JSON.
func (c *RotateStatusCmd) Run(g *Globals) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext()
	defer cancel()
	st, err := api.Rotation(ctx)
	if err != nil {
		return err
	}
	return printRotation(os.Stdout, st)
}

// rotateStep takes one step of a rotation.
type rotateStep struct {
	authorityAPI
	Step  string `arg:"" enum:"prepare,activate,retire" help:"prepare, activate or retire."`
	Force bool   `help:"Take the step before its waiting time has passed, or retire a CA that certificates still chain to."`
}

func (c *rotateStep) run(what string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext()
	defer cancel()
	st, err := api.Rotate(ctx, what, c.Step, authority.RotateInput{Force: c.Force})
	if err != nil {
		return err
	}
	return printRotation(os.Stdout, st)
}

// RotateConfKeyCmd takes a step of the configuration-signing key's
// rotation.
type RotateConfKeyCmd struct{ rotateStep }

// Run takes the step and prints where the rotations stand after it.
func (c *RotateConfKeyCmd) Run(g *Globals) error { return c.run("conf-key") }

// RotateCACmd takes a step of the instance CA's rotation.
type RotateCACmd struct{ rotateStep }

// Run takes the step and prints where the rotations stand after it.
func (c *RotateCACmd) Run(g *Globals) error { return c.run("ca") }

func printRotation(w io.Writer, st *authority.RotationStatus) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		return fmt.Errorf("print rotation status: %w", err)
	}
	return nil
}
