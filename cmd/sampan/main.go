// Command sampan is the single binary of the Sampan exchange: the sandbox,
// the authority and the gateway daemons, and their helpers.
package main

import (
	"os"

	"github.com/alecthomas/kong"
)

func main() {
	var cli CLI
	k := kong.Parse(&cli,
		kong.Name("sampan"),
		kong.Description("Sampan: a trusted data exchange for government."),
		kong.UsageOnError(),
	)
	if err := k.Run(&cli.Globals); err != nil {
		k.Errorf("%v", err)
		os.Exit(1)
	}
}
