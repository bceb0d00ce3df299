package gateway

import "time"

// SetBatching sets the rate above which gateways sign in batches and how
// long a batch gathers, for the gateways started from now on, and returns
// a function restoring them.
func SetBatching(rate float64, window time.Duration) (restore func()) {
	oldRate, oldWindow := batchBusyRate, batchWindow
	batchBusyRate, batchWindow = rate, window
	return func() { batchBusyRate, batchWindow = oldRate, oldWindow }
}
