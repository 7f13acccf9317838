package main

// The guard scenario: bearer_auth + reverse_proxy against plain
// reverse_proxy to the same trivial upstream, side by side in one run with
// the same workers, as the gateway scenario does it; then the latency of
// a token's first request, when nothing is cached yet.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Names of the bench Caddyfile's guard routes (tests/bench/bench.sh).
const (
	// guardJWTPath is the API site's route for JWT access tokens of the
	// bench API (apiAudience); guardOpaquePath the one for the opaque API,
	// introspected in process by the embedded server.
	guardJWTPath    = "/jwt/items?q=1"
	guardOpaquePath = "/opaque/items?q=1"
	// guardHTTPPath is the site of the second Caddy, whose bearer_auth
	// introspects over HTTP at the embedded server's endpoint.
	guardHTTPPath = "/items?q=1"
	// guardPlainPath is what the plain reverse_proxy site is asked for.
	guardPlainPath = "/api/items?q=1"
	opaqueAudience = "https://opaque.example.com"
	// guardUser is what the upstream sees in X-Forwarded-User: the sub of
	// a client_credentials token is <client_id>@clients.
	guardUser = backendID + "@clients"
	// tokenParallelism bounds concurrent token requests of the setup.
	tokenParallelism = 8
)

// guardOpts are the guard scenario's flags.
type guardOpts struct {
	apiBase, introspectBase string
	coldTokens              int
}

var grOpts guardOpts

// guardSide is one route under measurement.
type guardSide struct {
	name, label string
	url         string
	auth        string // the Authorization header sent
	user        string // what the upstream must see in X-Forwarded-User
	// base is the index of the plain side this one is compared with; -1
	// for a plain side.
	base int
}

// guardGet sends one API call and checks that the upstream answered with
// the expected identity.
func (lg *loadgen) guardGet(ctx context.Context, target, auth, user string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := lg.client.Do(req)
	if err != nil {
		return err
	}
	var buf [64]byte
	n, _ := io.ReadFull(resp.Body, buf[:])
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d (WWW-Authenticate %q)", target, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if got, want := string(buf[:n]), "hello "+user; got != want {
		return fmt.Errorf("GET %s: upstream answered %q, want %q", target, got, want)
	}
	return nil
}

func (lg *loadgen) guardOp(s *guardSide) func(context.Context) error {
	return func(ctx context.Context) error { return lg.guardGet(ctx, s.url, s.auth, s.user) }
}

// accessToken gets one access token for audience with client_credentials.
func (lg *loadgen) accessToken(ctx context.Context, audience string) (string, error) {
	body := url.Values{"grant_type": {"client_credentials"}, "audience": {audience}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lg.base+"/oauth/token", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", backendAuth)
	resp, err := lg.client.Do(req)
	if err != nil {
		return "", err
	}
	tok, err := decodeToken(resp)
	if err != nil {
		return "", err
	}
	dots := strings.Count(tok.AccessToken, ".")
	switch {
	case tok.AccessToken == "":
		return "", errors.New("token response without an access_token")
	case audience == apiAudience && dots != 2:
		return "", fmt.Errorf("the access token for %s is not a JWT", audience)
	case audience == opaqueAudience && (dots == 2 || dots == 4):
		// The guard takes a token with two or four dots for a JWS or JWE.
		return "", fmt.Errorf("the access token for %s is not opaque", audience)
	}
	return tok.AccessToken, nil
}

// accessTokens gets n distinct access tokens for audience.
func (lg *loadgen) accessTokens(ctx context.Context, audience string, n int) ([]string, error) {
	out := make([]string, n)
	sem := make(chan struct{}, tokenParallelism)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range out {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok, err := lg.accessToken(ctx, audience)
			if err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
				return
			}
			out[i] = tok
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	seen := make(map[string]bool, n)
	for _, t := range out {
		if seen[t] {
			return nil, fmt.Errorf("the token endpoint issued the same %s token twice", audience)
		}
		seen[t] = true
	}
	return out, nil
}

// guardRefuses checks that a route without a token is refused the RFC
// 6750 way, so bearer_auth is really in its path.
func (lg *loadgen) guardRefuses(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := lg.client.Do(req)
	if err != nil {
		return err
	}
	drain(resp, resp.StatusCode)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		return fmt.Errorf("%s: a request without a token got status %d (WWW-Authenticate %q), want 401 Bearer: is bearer_auth in the path?",
			target, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	return nil
}

// coldRoute is a guarded route measured with fresh tokens.
type coldRoute struct {
	name, label, url string
	tokens           []string
}

// guardSetup gets the tokens (untimed), checks every route in depth and
// returns the sides to measure (the JWT route and the introspected route,
// each after its plain baseline) and the routes of the cold phase.
func (lg *loadgen) guardSetup(ctx context.Context) ([]*guardSide, []*coldRoute, error) {
	if grOpts.apiBase == "" || gwOpts.plainBase == "" {
		return nil, nil, errors.New("needs -api-base (bearer_auth routes + reverse_proxy) and -plain-base (reverse_proxy alone)")
	}
	jwt, err := lg.accessToken(ctx, apiAudience)
	if err != nil {
		return nil, nil, fmt.Errorf("JWT access token: %w", err)
	}
	opaque, err := lg.accessToken(ctx, opaqueAudience)
	if err != nil {
		return nil, nil, fmt.Errorf("opaque access token: %w", err)
	}
	// Each guarded route has a baseline of its own that gets its very
	// requests, Authorization included: the sides of a pair differ only
	// in the handlers. (A JWT is ten times the size of an opaque token,
	// and receiving and forwarding its bytes alone costs a few percent.)
	plainURL := gwOpts.plainBase + guardPlainPath
	sides := []*guardSide{
		{name: "guard_plain_jwt", label: fmt.Sprintf("reverse_proxy alone, B's requests (a %d-byte Authorization header)", len("Bearer "+jwt)),
			url: plainURL, auth: "Bearer " + jwt, base: -1},
		{name: "guard_jwt", label: fmt.Sprintf("bearer_auth (JWT, %d bytes, ES256; verified once, then cached) + reverse_proxy", len(jwt)),
			url: grOpts.apiBase + guardJWTPath, auth: "Bearer " + jwt, user: guardUser, base: 0},
		{name: "guard_plain_opaque", label: fmt.Sprintf("reverse_proxy alone, D's requests (a %d-byte Authorization header)", len("Bearer "+opaque)),
			url: plainURL, auth: "Bearer " + opaque, base: -1},
		{name: "guard_introspected", label: fmt.Sprintf("bearer_auth (opaque token, %d bytes, introspected in process; answer cached) + reverse_proxy", len(opaque)),
			url: grOpts.apiBase + guardOpaquePath, auth: "Bearer " + opaque, user: guardUser, base: 2},
	}
	for _, s := range sides {
		if s.base < 0 {
			continue
		}
		if err := lg.guardRefuses(ctx, s.url); err != nil {
			return nil, nil, fmt.Errorf("preflight: %w", err)
		}
	}
	for _, s := range sides {
		if err := lg.guardOp(s)(ctx); err != nil {
			return nil, nil, fmt.Errorf("preflight: %s: %w", s.label, err)
		}
	}

	n := grOpts.coldTokens
	if n == 0 {
		return sides, nil, nil
	}
	cold := []*coldRoute{
		{name: "guard_cold_jwt", label: "JWT: signature and claims checked (ES256)", url: grOpts.apiBase + guardJWTPath},
		{name: "guard_cold_introspection", label: "opaque: introspected in process (the embedded server's store)", url: grOpts.apiBase + guardOpaquePath},
	}
	if grOpts.introspectBase != "" {
		if err := lg.guardRefuses(ctx, grOpts.introspectBase+guardHTTPPath); err != nil {
			return nil, nil, fmt.Errorf("preflight: %w", err)
		}
		// The preflight token warms only the site's cache: the cold
		// phase gets tokens of its own.
		if err := lg.guardGet(ctx, grOpts.introspectBase+guardHTTPPath, "Bearer "+opaque, guardUser); err != nil {
			return nil, nil, fmt.Errorf("preflight: bearer_auth introspecting over HTTP: %w", err)
		}
		cold = append(cold, &coldRoute{name: "guard_cold_introspection_http",
			label: "opaque: introspected over HTTP (POST /oauth/introspect, client_secret_basic, from a second Caddy)",
			url:   grOpts.introspectBase + guardHTTPPath})
	}
	// Distinct tokens for every route, so that every first request misses
	// every cache (the guard's, and anything the server may keep).
	for _, c := range cold {
		aud := opaqueAudience
		if c.name == "guard_cold_jwt" {
			aud = apiAudience
		}
		if c.tokens, err = lg.accessTokens(ctx, aud, n); err != nil {
			return nil, nil, fmt.Errorf("%d fresh tokens for %s: %w", n, c.name, err)
		}
	}
	return sides, cold, nil
}

// runGuard is the guard scenario: the throughput phase runs every side for
// dur in total at concurrency workers, in rounds that alternate the order;
// the latency phase does the same with a few workers, so that the added
// latency is the guard's own work rather than queueing behind a saturated
// CPU. Then the cold phase times the first request of fresh tokens.
func (lg *loadgen) runGuard(concurrency int, warmup, dur time.Duration, serverPID int) []*result {
	setupStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sides, cold, err := lg.guardSetup(ctx)
	if err != nil {
		return []*result{{name: "guard", unit: "requests", concurrency: concurrency, setupErr: err}}
	}
	// bench.sh waits for this line before it starts a server profile.
	fmt.Printf("  %-20s setup done in %s, running\n", "guard", time.Since(setupStart).Round(time.Millisecond))
	for i, s := range sides {
		fmt.Printf("  %-20s %c = %s, %s\n", "", 'A'+i, s.label, s.url)
	}

	phase := func(conc int, total time.Duration, suffix string) []*result {
		names := make([]string, len(sides))
		ops := make([]func(context.Context) error, len(sides))
		for i, s := range sides {
			names[i] = s.name + suffix
			ops[i] = lg.guardOp(s)
		}
		out := lg.alternate(names, ops, conc, warmup, total, serverPID)
		judgeGuard(out, sides, suffix != "")
		printRounds("guard"+suffix, "guard_", out)
		return out
	}
	results := phase(concurrency, dur, "")
	if gwOpts.latencySeconds > 0 && gwOpts.latencyConcurrency > 0 {
		lat := phase(gwOpts.latencyConcurrency, time.Duration(gwOpts.latencySeconds*float64(time.Second)), fmt.Sprintf("@%d", gwOpts.latencyConcurrency))
		results = append(results, lat...)
	}
	var coldRows []*coldResult
	if len(cold) > 0 {
		coldRows = lg.measureCold(gwOpts.plainBase+guardPlainPath, cold, serverPID)
		for _, c := range coldRows {
			results = append(results, c.cold)
		}
	}
	printSideBySide("guard: bearer_auth + reverse_proxy against reverse_proxy alone (same upstream, same workers, same run)", results[:len(results)-len(coldRows)])
	fmt.Printf("targets (against plain with the same requests): at concurrency %d, throughput ≥ %.0f%%; with %d worker(s), p99 added < %s;\n",
		concurrency, 100*gatewayRatioTarget, gwOpts.latencyConcurrency, ms(addedLatencyTarget))
	fmt.Println("judged on the median over the rounds (each round compares the sides run back to back). At saturation,")
	fmt.Println("added latency is queueing (Little's law: workers / throughput); the @N rows show the guard's own.")
	fmt.Println("srv µs/req is the server's CPU time per request.")
	if len(coldRows) > 0 {
		printCold(coldRows)
	}
	return results
}

// judgeGuard sets the guard rows' target and verdict against their plain
// rows, as judge does for the gateway.
func judgeGuard(rs []*result, sides []*guardSide, latency bool) {
	for i, r := range rs {
		if sides[i].base < 0 {
			r.targetText, r.verdict = "baseline", "info"
			continue
		}
		r.base = rs[sides[i].base]
		pass := r.medianRatio() >= gatewayRatioTarget
		r.targetText = fmt.Sprintf("≥ %.0f%% of plain", 100*gatewayRatioTarget)
		if latency {
			pass = r.medianAdded(.99) < addedLatencyTarget
			r.targetText = "p99 +< " + ms(addedLatencyTarget)
		}
		r.verdict = "PASS"
		if !pass {
			r.verdict = "BELOW"
		}
	}
}

// coldResult is one route's cold phase: the first request of each fresh
// token (cold), its second (warm), and a plain request sent just before.
type coldResult struct {
	route             *coldRoute
	cold, warm, plain *result
}

// measureCold times, with one worker, the first request of each fresh
// token: it misses the guard's cache, so a JWT's signature is checked or
// an opaque token introspected. The token's second request (now cached)
// and a plain request with the same header are timed next to it, and the
// routes take turns token by token, so that drift falls on all of them.
func (lg *loadgen) measureCold(plainURL string, routes []*coldRoute, serverPID int) []*coldResult {
	out := make([]*coldResult, len(routes))
	for i, c := range routes {
		out[i] = &coldResult{route: c,
			cold:  &result{name: c.name, unit: "first requests", concurrency: 1, targetText: "-", verdict: "info"},
			warm:  &result{name: c.name + "_warm", unit: "requests", concurrency: 1},
			plain: &result{name: c.name + "_plain", unit: "requests", concurrency: 1},
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	timed := func(r *result, target, auth, user string) {
		t0 := time.Now()
		err := lg.guardGet(ctx, target, auth, user)
		d := time.Since(t0)
		if err != nil {
			r.errs++
			if r.firstErr == "" {
				r.firstErr = err.Error()
			}
			return
		}
		r.ok++
		r.elapsed += d
		r.lat = append(r.lat, d)
	}
	// Connections to every site are open and warm already.
	start := time.Now()
	cpuStart := sampleCPU(serverPID, gwOpts.upstreamPID)
	for k := range grOpts.coldTokens {
		for _, c := range out {
			auth := "Bearer " + c.route.tokens[k]
			timed(c.plain, plainURL, auth, "")
			timed(c.cold, c.route.url, auth, guardUser)
			timed(c.warm, c.route.url, auth, guardUser)
		}
		if ctx.Err() != nil {
			break
		}
	}
	cpu := cpuStart.usage(sampleCPU(serverPID, gwOpts.upstreamPID))
	fmt.Printf("  %-20s %d fresh tokens per route, 1 worker, %s\n", "guard_cold", grOpts.coldTokens, time.Since(start).Round(time.Millisecond))
	for _, c := range out {
		for _, r := range []*result{c.cold, c.warm, c.plain} {
			r.cpu = cpu
			r.elapsed = r.elapsed.Round(time.Microsecond)
			slices.Sort(r.lat)
		}
		printLine(c.cold)
		// The row in the results table stands for all three: a failing
		// warm or plain request fails it too.
		c.cold.errs += c.warm.errs + c.plain.errs
		if c.cold.firstErr == "" {
			c.cold.firstErr = cmp.Or(c.warm.firstErr, c.plain.firstErr)
		}
	}
	return out
}

func printCold(rows []*coldResult) {
	fmt.Println()
	fmt.Printf("guard cold: the first request of each of %d fresh tokens (cache miss), 1 worker; then its second request (warm),\n", grOpts.coldTokens)
	fmt.Println("and a plain reverse_proxy request with the same header; the routes take turns token by token")
	fmt.Printf("  %-32s %6s %9s %9s %9s %9s %9s %9s %19s\n", "", "tokens", "cold p50", "cold p99", "warm p50", "warm p99", "plain p50", "plain p99", "added cold p50/p99")
	for _, c := range rows {
		fmt.Printf("  %-32s %6d %9s %9s %9s %9s %9s %9s %9s %9s\n", c.cold.name, c.cold.ok,
			ms(c.cold.pct(.50)), ms(c.cold.pct(.99)), ms(c.warm.pct(.50)), ms(c.warm.pct(.99)),
			ms(c.plain.pct(.50)), ms(c.plain.pct(.99)),
			addedMs(c.cold.pct(.50)-c.plain.pct(.50)), addedMs(c.cold.pct(.99)-c.plain.pct(.99)))
	}
	for _, c := range rows {
		fmt.Printf("  %-32s %s\n", c.cold.name, c.route.label)
		if c.cold.errs > 0 {
			fmt.Printf("  %-32s %d errors; first: %s\n", "", c.cold.errs, c.cold.firstErr)
		}
	}
	fmt.Println("added cold is the cold request's percentile minus plain's, in ms (no target: reported).")
}
