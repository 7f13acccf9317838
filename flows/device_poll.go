package flows

import (
	"sync"
	"time"
)

// slowDownStep is how much a device's polling interval grows each time it
// polls too fast. RFC 8628 §3.5, slow_down: "the interval MUST be
// increased by 5 seconds for this and all subsequent requests."
const slowDownStep = 5 * time.Second

// maxDevicePolls bounds the poll states kept in memory.
const maxDevicePolls = 100_000

// devicePolls remembers, per pending device authorization request, when
// its device last polled and the interval in force. It lives in memory so
// that a poll finding the request still pending writes nothing: polls are
// most of the device flow's traffic. The price is that each server
// instance keeps its own view, and a restart forgets it (the next poll
// starts afresh at the announced interval).
type devicePolls struct {
	mu  sync.Mutex
	m   map[string]*pollState // by device code digest
	max int
	// pruned is when a full map was last swept for expired states, so
	// that a flood of new requests does not sweep it on every poll.
	pruned time.Time
}

type pollState struct {
	last     time.Time
	interval time.Duration
	// until is when the request's code expires: the state is useless
	// after it.
	until time.Time
}

func newDevicePolls(maxEntries int) *devicePolls {
	return &devicePolls{m: map[string]*pollState{}, max: maxEntries}
}

// pollLeeway is the share of the interval a poll may come early and
// still be on time: the device measures the interval from when it got
// the previous answer, the server from when it read the previous request,
// and either side may be scheduled late.
const pollLeeway = 10 // percent

// pendingRequest is what the poll clock needs of a pending device or CIBA
// request.
type pendingRequest struct {
	// Digest is the request's store key.
	Digest string
	// Interval is the polling interval announced to the client.
	Interval time.Duration
	// CreatedAt and ExpiresAt bound the request's code lifetime.
	CreatedAt, ExpiresAt time.Time
}

// poll records a poll of the pending request d at now. It reports whether
// the poll came sooner than the interval in force (the client must be told
// slow_down), and that interval, raised by slowDownStep when it did.
func (p *devicePolls) poll(d pendingRequest, now time.Time) (tooFast bool, interval time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.m[d.Digest]
	if !ok {
		// The first poll sets the clock going. A server that has no state
		// for the device (restarted, or another instance) starts afresh at
		// the announced interval.
		if len(p.m) >= p.max && now.Sub(p.pruned) >= time.Second {
			p.pruneLocked(now)
			p.pruned = now
		}
		if len(p.m) >= p.max {
			// Full of live requests: forget an arbitrary one, which then
			// starts afresh; memory stays bounded.
			for k := range p.m {
				delete(p.m, k)
				break
			}
		}
		st = &pollState{interval: d.Interval, until: d.ExpiresAt}
		p.m[d.Digest] = st
		st.last = now
		return false, st.interval
	}
	early := now.Sub(st.last) < st.interval-st.interval*pollLeeway/100
	st.last = now
	if early {
		// Bounded by the code's lifetime: a longer wait means the same.
		st.interval = min(st.interval+slowDownStep, max(d.ExpiresAt.Sub(d.CreatedAt), slowDownStep))
	}
	return early, st.interval
}

// forget drops the state of a request that is no longer pending.
func (p *devicePolls) forget(digest string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, digest)
}

// prune drops the states of requests whose code has expired.
func (p *devicePolls) prune(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked(now)
}

func (p *devicePolls) pruneLocked(now time.Time) {
	for k, st := range p.m {
		if !now.Before(st.until) {
			delete(p.m, k)
		}
	}
}

// len reports how many states are kept (tests).
func (p *devicePolls) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
