package gateway

import "time"

// SetBatching sets when gateways sign in batches and how long a batch
// gathers, for the gateways started from now on, and returns a function
// restoring them.
func SetBatching(busy func() bool, window time.Duration) (restore func()) {
	oldBusy, oldWindow := batchBusy, batchWindow
	batchBusy, batchWindow = busy, window
	return func() { batchBusy, batchWindow = oldBusy, oldWindow }
}

// ReadHeld is readHeld, for its tests.
var ReadHeld = readHeld

// WarmIdle reports how many warm goroutines wait for peer requests.
func (g *Gateway) WarmIdle() int { return g.warm.Idle() }
