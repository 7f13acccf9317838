package main

// What the device and CIBA scenarios share: form posts to the server,
// the checked JSON answer of an issuing endpoint, and the paced polls of
// pending requests at the token endpoint.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// postForm posts an urlencoded body to path, with an Authorization header
// when auth is not empty.
func (lg *loadgen) postForm(ctx context.Context, path, auth, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lg.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return lg.client.Do(req)
}

// readOK reads a 200 JSON answer into v and returns its body; what names
// the request in errors.
func readOK(resp *http.Response, what string, v any) ([]byte, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d: %s", what, resp.StatusCode, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return body, nil
}

// pollToken sends one poll of a pending request to the token endpoint and
// returns the error code of the answer.
func (lg *loadgen) pollToken(ctx context.Context, auth, body string) (string, error) {
	resp, err := lg.postForm(ctx, "/oauth/token", auth, body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	var e struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &e) != nil || e.Error == "" {
		return "", fmt.Errorf("poll: status %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return e.Error, nil
}

// pacedPolls is a scenario of polls while the user has not decided
// (device_poll_pending, ciba_poll_pending), measured honestly: the server
// answers slow_down to a client that polls sooner than its interval, so
// each worker polls its own share of a pool of pending requests in turn
// and never polls one sooner than the interval the server announced. A
// slow_down answer is an error here (the load generator broke the rule),
// and so is any answer other than authorization_pending. When the pool is
// too small for the pace, workers wait, and the waits are counted and
// printed: the figure is then the pool's limit, not the server's.
type pacedPolls struct {
	name string // the scenario
	noun string // what is polled: "code", "request"
	flag string // the flag that sizes the pool
	pool *int   // its value
	auth string // the token requests' Authorization header, if any

	// paced counts polls that had to wait for their request's interval;
	// slowDowns counts slow_down answers.
	paced, slowDowns atomic.Int64
}

// pendingPoll is one pending request a worker polls: the token request
// body, the interval the server announced, and when the interval starts
// to run (zero: the first poll may go at once).
type pendingPoll struct {
	body     string
	interval time.Duration
	since    time.Time
}

// pollWorker is one worker of a pacedPolls scenario: its own requests,
// polled in turn, each at most once per interval.
type pollWorker struct {
	p        *pacedPolls
	lg       *loadgen
	bodies   []string
	last     []time.Time
	next     int
	interval time.Duration
}

// worker creates the worker's share of the pool with create, whose i
// counts from 0.
func (p *pacedPolls) worker(ctx context.Context, lg *loadgen, create func(ctx context.Context, i int) (pendingPoll, error)) (func(context.Context) error, error) {
	n := max(*p.pool/max(benchConcurrency, 1), 1)
	w := &pollWorker{p: p, lg: lg, bodies: make([]string, n), last: make([]time.Time, n)}
	for i := range n {
		pp, err := create(ctx, i)
		if err != nil {
			return nil, err
		}
		w.bodies[i], w.last[i], w.interval = pp.body, pp.since, pp.interval
	}
	return w.op, nil
}

func (w *pollWorker) op(ctx context.Context) error {
	i := w.next
	w.next = (w.next + 1) % len(w.bodies)
	if wait := time.Until(w.last[i].Add(w.interval)); wait > 0 {
		w.p.paced.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	w.last[i] = time.Now()
	code, err := w.lg.pollToken(ctx, w.p.auth, w.bodies[i])
	switch {
	case err != nil:
		return err
	case code == "slow_down":
		w.p.slowDowns.Add(1)
		return errors.New("slow_down: a " + w.p.noun + " was polled sooner than its interval")
	case code != "authorization_pending":
		return fmt.Errorf("poll: %s, want authorization_pending", code)
	}
	return nil
}

// preflight checks the rule the scenario relies on, on a fresh request
// (named fresh in errors) whose interval, in seconds, is due: a poll is
// authorization_pending, an immediate second one slow_down. It also checks
// that the pool gives every worker a request.
func (p *pacedPolls) preflight(ctx context.Context, lg *loadgen, body, fresh string, interval int) error {
	for i, want := range []string{"authorization_pending", "slow_down"} {
		code, err := lg.pollToken(ctx, p.auth, body)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("poll %d of a fresh %s: %s, want %s", i+1, fresh, code, want)
		}
	}
	if *p.pool/max(benchConcurrency, 1) < 1 {
		return fmt.Errorf("%s %d is fewer than the workers", p.flag, *p.pool)
	}
	if interval > 1 {
		fmt.Printf("  %-20s note: the server's interval is %d s; %d %ss allow at most %d polls/s\n",
			p.name, interval, *p.pool, p.noun, *p.pool/interval)
	}
	return nil
}

// printNotes prints what the result table does not show.
func (p *pacedPolls) printNotes() {
	if n := p.paced.Load(); n > 0 {
		fmt.Printf("  %-20s %d polls waited for their %s's interval: the pool of %d %ss, not the server, set the pace (raise %s)\n",
			p.name, n, p.noun, *p.pool, p.noun, p.flag)
	}
	if n := p.slowDowns.Load(); n > 0 {
		fmt.Printf("  %-20s %d slow_down answers (counted as errors)\n", p.name, n)
	}
}
