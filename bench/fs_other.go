//go:build !linux

package bench

// fsType names the file system dir is on; only Linux is asked.
func fsType(string) string { return "" }
