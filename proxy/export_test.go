package proxy

// CacheLens reports the entries of the guard's verified-JWT,
// introspection and inactive-token caches (flood tests).
func (g *Guard) CacheLens() (verified, introspected, inactive int) {
	return g.verified.len(), g.introspected.len(), g.inactive.len()
}

// UsedStates reports how many login states the gateway remembers as used
// (flood tests).
func (g *Gateway) UsedStates() int {
	g.usedStates.mu.Lock()
	defer g.usedStates.mu.Unlock()
	return len(g.usedStates.seen)
}

// MaxSeenTokens is the cap of the used login states and logout token ids.
const MaxSeenTokens = maxSeenTokens
