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

// SetPeerProtocols sets the protocols consumer gateways offer provider
// gateways on the connections they open from now on, and returns a
// function restoring them.
func SetPeerProtocols(protos ...string) (restore func()) {
	old := peerProtos
	peerProtos = protos
	return func() { peerProtos = old }
}
