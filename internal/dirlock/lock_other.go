//go:build !unix

package dirlock

import "os"

// lock does nothing where flock is not available: restores there rely on
// the operator stopping the node first.
func lock(*os.File) error { return nil }
