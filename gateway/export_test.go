package gateway

// WarmIdle reports how many warm goroutines wait for peer requests.
func (g *Gateway) WarmIdle() int { return g.warm.Idle() }
