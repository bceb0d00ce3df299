package gateway

// SetBatchBusyRate sets the rate above which gateways sign in batches, for
// the gateways started from now on, and returns a function restoring it.
func SetBatchBusyRate(r float64) (restore func()) {
	old := batchBusyRate
	batchBusyRate = r
	return func() { batchBusyRate = old }
}
