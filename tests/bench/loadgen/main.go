// Command loadgen is Portcullis' load generator: it drives a running
// Portcullis (Caddy with the plugin) with a fixed number of closed-loop
// workers for a fixed time per scenario and prints throughput and latency
// percentiles next to the performance targets.
//
// It only ever talks to loopback addresses (-base must be http://127.0.0.1
// or http://[::1] or http://localhost) and every scenario is bounded in time.
// tests/bench/bench.sh builds the server, starts it with a matching
// Caddyfile and runs this; see tests/bench/README.md.
//
// Exit status: 0 when every scenario ran with at most 1% errors (whether or
// not it met its target: this is a benchmark, not a test); 1 when a scenario
// had more than 1% errors or its preflight check failed; 2 for bad usage.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/net/html"
)

// Credentials and names of the bench Caddyfile (tests/bench/bench.sh).
const (
	backendID      = "backend"
	backendSecret  = "backend-secret"
	apiAudience    = "https://api.example.com"
	webappID       = "webapp"
	webappSecret   = "webapp-secret"
	username       = "alice"
	password       = "alice-password"
	callbackPath   = "/callback"
	maxErrorsRatio = 0.01
	// signInParallelism bounds concurrent sign-ins during the
	// authcode_roundtrip setup: each one is an argon2id verification with
	// 64 MiB of memory on the server.
	signInParallelism = 4
)

// scenario is one load pattern. setup runs once per worker before the
// clock starts (untimed); op is one timed operation.
type scenario struct {
	name   string
	unit   string  // what one operation is, for the table
	target float64 // operations per second; 0 for none
	// newWorker prepares a worker (untimed) and returns its operation.
	newWorker func(ctx context.Context, lg *loadgen, id int) (op func(ctx context.Context) error, err error)
	// preflight checks one operation in depth before the run.
	preflight func(ctx context.Context, lg *loadgen) error
	// custom, when set, runs the whole scenario instead (the gateway's
	// side-by-side measurement) and returns a result per row.
	custom func(lg *loadgen, concurrency int, warmup, dur time.Duration, serverPID int) []*result
}

// benchConcurrency is the -concurrency flag, for scenarios that size their
// per-worker set-up by it.
var benchConcurrency int

type loadgen struct {
	base      string
	transport *http.Transport
	client    *http.Client // shared, no cookie jar, no redirects
	signIns   chan struct{}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// result is the outcome of one scenario.
type result struct {
	name, unit  string
	target      float64
	concurrency int
	ok, errs    int64
	elapsed     time.Duration
	lat         []time.Duration // successful operations, sorted
	firstErr    string
	setupErr    error
	cpu         cpuUsage
	// targetText and verdict, when set, replace the table's target and
	// result columns; base is the row a gateway row is compared with.
	targetText, verdict string
	base                *result
	rounds              []*result // the gateway scenario's rounds, in order
}

func (r *result) total() int64 { return r.ok + r.errs }

func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

func (r *result) errRatio() float64 {
	if r.total() == 0 {
		return 0
	}
	return float64(r.errs) / float64(r.total())
}

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p*float64(len(r.lat))+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// failed reports a scenario that did not produce a trustworthy figure.
func (r *result) failed() bool {
	return r.setupErr != nil || r.total() == 0 || r.errRatio() > maxErrorsRatio
}

func main() {
	base := flag.String("base", "http://127.0.0.1:9000", "issuer URL of the server under test (loopback only)")
	seconds := flag.Float64("seconds", 10, "measured duration of each scenario, in seconds")
	warmup := flag.Float64("warmup", 1, "untimed warm-up before each scenario, in seconds")
	concurrency := flag.Int("concurrency", 64, "closed-loop workers (and idle keep-alive connections)")
	only := flag.String("scenario", "all", "scenario to run: all, client_credentials, authcode_roundtrip, jwks, discovery, device_code, device_poll_pending (device: both), ciba_authorize, ciba_poll_pending, ciba_push_latency (ciba: all three), gateway, guard or token_vs_node (comma-separated list allowed; all includes gateway when -app-base and -plain-base are set, guard when -api-base and -plain-base are, ciba_push_latency when -admin-base and -ciba-receiver are; never token_vs_node, which needs -node-base)")
	serverPID := flag.Int("server-pid", 0, "process id of the server, to report its CPU use next to the load generator's and other processes' (Linux /proc)")
	wait := flag.Float64("wait", 0, "instead of a benchmark: wait up to this many seconds for -base's discovery document, exit 0 once it is served")
	freePorts := flag.Int("free-ports", 0, "instead of a benchmark: print this many free 127.0.0.1 TCP ports, one per line")
	waitSite := flag.String("wait-site", "", "with -wait: wait for this loopback URL to answer (any status) instead of -base's discovery document")
	upstream := flag.String("upstream", "", "instead of a benchmark: serve the gateway scenario's trivial upstream app on this loopback host:port until killed")
	flag.StringVar(&gwOpts.appBase, "app-base", "", "gateway scenario: URL of the site with oidc_login + reverse_proxy (cookie sessions)")
	flag.StringVar(&gwOpts.plainBase, "plain-base", "", "gateway and guard scenarios: URL of the site with reverse_proxy alone, to the same upstream")
	flag.StringVar(&gwOpts.serverBase, "server-session-base", "", "gateway scenario, optional: URL of a site with oidc_login (session_store server) + reverse_proxy")
	flag.IntVar(&gwOpts.rounds, "rounds", 20, "gateway and guard scenarios: rounds the measured time of each side is split into, alternating the order of the sides")
	flag.Float64Var(&gwOpts.latencySeconds, "latency-seconds", 5, "gateway and guard scenarios: measured seconds per side of the low-concurrency latency phase (0 skips it)")
	flag.IntVar(&gwOpts.latencyConcurrency, "latency-concurrency", 1, "gateway and guard scenarios: workers of the latency phase")
	flag.IntVar(&gwOpts.upstreamPID, "upstream-pid", 0, "process id of the upstream app, to report its CPU use apart from other processes'")
	flag.StringVar(&grOpts.apiBase, "api-base", "", "guard scenario: URL of the API site (bearer_auth on /jwt/ and /opaque/, + reverse_proxy to the upstream of -plain-base)")
	flag.StringVar(&grOpts.introspectBase, "introspect-base", "", "guard scenario, optional: URL of a site of another Caddy whose bearer_auth introspects over HTTP at -base")
	flag.IntVar(&grOpts.coldTokens, "cold-tokens", 500, "guard scenario: fresh tokens per route whose first request is timed (0 skips the cold phase)")
	flag.IntVar(&peerPID, "introspect-pid", 0, "process id of the Caddy behind -introspect-base, to report its CPU use apart from other processes'")
	flag.IntVar(&deviceCodes, "device-codes", 20000, "device_poll_pending: device codes the workers poll in turn, each once per interval")
	flag.StringVar(&cibaOpts.adminBase, "admin-base", "", "ciba_push_latency: URL of Caddy's admin endpoint (the approvals go through its /portcullis/ciba API)")
	flag.StringVar(&cibaOpts.receiver, "ciba-receiver", "", "ciba_push_latency: loopback host:port to serve the push client's notification endpoint on (the bench Caddyfile's backchannel_client_notification_endpoint)")
	flag.IntVar(&cibaOpts.users, "ciba-users", 1024, "ciba_authorize, ciba_poll_pending: users ciba-user-000… the requests are spread over")
	flag.IntVar(&cibaOpts.pushUsers, "ciba-push-users", 16, "ciba_push_latency: users ciba-push-00… in the bench Caddyfile, one per worker")
	flag.IntVar(&cibaOpts.requests, "ciba-requests", 20000, "ciba_poll_pending: CIBA requests the workers poll in turn, each once per interval")
	flag.IntVar(&cibaOpts.pushRequests, "ciba-push-requests", 500, "ciba_push_latency: timed approvals")
	flag.StringVar(&vsOpts.nodeBase, "node-base", "", "token_vs_node: issuer URL of the node oidc-provider compared with -base (loopback only)")
	flag.IntVar(&vsOpts.nodePID, "node-pid", 0, "token_vs_node: process id of the node oidc-provider, for its CPU per token")
	flag.IntVar(&serverCPU, "server-cpu", -1, "token_vs_node: the CPU the servers are pinned to, to report what other processes used of it (-1: none)")
	flag.IntVar(&loadgenCPU, "loadgen-cpu", -1, "token_vs_node: the CPU the load generator is pinned to, to report what other processes used of it (-1: none)")
	flag.Float64Var(&vsOpts.roundSeconds, "round-seconds", 5, "token_vs_node: measured seconds per side and round (after -warmup); -rounds rounds")
	flag.IntVar(&cibaOpts.pushConcurrency, "ciba-push-concurrency", 4, "ciba_push_latency: workers, each approving its own user's requests one at a time")
	flag.Parse()
	benchConcurrency = *concurrency

	if *upstream != "" {
		if err := serveUpstream(*upstream); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}

	if *freePorts > 0 {
		if err := printFreePorts(*freePorts); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}

	if err := checkLoopback(*base); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if *seconds <= 0 || *seconds > 600 || *warmup < 0 || *warmup > 60 || *concurrency < 1 || *concurrency > 4096 {
		fmt.Fprintln(os.Stderr, "loadgen: need 0 < -seconds <= 600, 0 <= -warmup <= 60, 1 <= -concurrency <= 4096")
		os.Exit(2)
	}
	if gwOpts.rounds < 1 || gwOpts.rounds > 100 || gwOpts.latencySeconds < 0 || gwOpts.latencySeconds > 600 || gwOpts.latencyConcurrency < 0 || gwOpts.latencyConcurrency > 4096 {
		fmt.Fprintln(os.Stderr, "loadgen: need 1 <= -rounds <= 100, 0 <= -latency-seconds <= 600, 0 <= -latency-concurrency <= 4096")
		os.Exit(2)
	}
	if grOpts.coldTokens < 0 || grOpts.coldTokens > 2000 {
		fmt.Fprintln(os.Stderr, "loadgen: need 0 <= -cold-tokens <= 2000")
		os.Exit(2)
	}
	if deviceCodes < 1 || deviceCodes > 1_000_000 {
		fmt.Fprintln(os.Stderr, "loadgen: need 1 <= -device-codes <= 1000000")
		os.Exit(2)
	}
	if cibaOpts.users < 1 || cibaOpts.requests < 1 || cibaOpts.requests > 1_000_000 || cibaOpts.pushRequests < 1 || cibaOpts.pushRequests > 100_000 ||
		cibaOpts.pushConcurrency < 1 || cibaOpts.pushConcurrency > cibaOpts.pushUsers {
		fmt.Fprintln(os.Stderr, "loadgen: need -ciba-users >= 1, 1 <= -ciba-requests <= 1000000, 1 <= -ciba-push-requests <= 100000, 1 <= -ciba-push-concurrency <= -ciba-push-users")
		os.Exit(2)
	}
	if cibaOpts.receiver != "" {
		if err := checkLoopback("http://" + cibaOpts.receiver); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: -ciba-receiver:", err)
			os.Exit(2)
		}
	}
	if vsOpts.roundSeconds <= 0 || vsOpts.roundSeconds > 600 {
		fmt.Fprintln(os.Stderr, "loadgen: need 0 < -round-seconds <= 600")
		os.Exit(2)
	}
	for _, b := range []string{gwOpts.appBase, gwOpts.plainBase, gwOpts.serverBase, grOpts.apiBase, grOpts.introspectBase, cibaOpts.adminBase, vsOpts.nodeBase, *waitSite} {
		if b == "" {
			continue
		}
		if err := checkLoopback(b); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
	}
	gwOpts.appBase = strings.TrimSuffix(gwOpts.appBase, "/")
	gwOpts.plainBase = strings.TrimSuffix(gwOpts.plainBase, "/")
	gwOpts.serverBase = strings.TrimSuffix(gwOpts.serverBase, "/")
	grOpts.apiBase = strings.TrimSuffix(grOpts.apiBase, "/")
	grOpts.introspectBase = strings.TrimSuffix(grOpts.introspectBase, "/")
	cibaOpts.adminBase = strings.TrimSuffix(cibaOpts.adminBase, "/")
	if *wait > 0 {
		limit := time.Duration(*wait * float64(time.Second))
		if *waitSite != "" {
			if err := waitAnswer(*waitSite, limit); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				os.Exit(1)
			}
			return
		}
		if err := waitReady(strings.TrimSuffix(*base, "/"), limit); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	all := scenarios()
	var run []scenario
	if *only == "all" {
		for _, s := range all {
			if s.name == "gateway" && (gwOpts.appBase == "" || gwOpts.plainBase == "") {
				continue // needs the gateway sites
			}
			if s.name == "guard" && (grOpts.apiBase == "" || gwOpts.plainBase == "") {
				continue // needs the API site
			}
			if s.name == "ciba_push_latency" && (cibaOpts.adminBase == "" || cibaOpts.receiver == "") {
				continue // needs the admin endpoint and the receiver
			}
			if s.name == "token_vs_node" {
				continue // needs a node oidc-provider and pinned processes: run it by name
			}
			run = append(run, s)
		}
	} else {
		var names []string
		for name := range strings.SplitSeq(*only, ",") {
			switch name = strings.TrimSpace(name); name {
			case "device":
				names = append(names, "device_code", "device_poll_pending")
			case "ciba":
				names = append(names, "ciba_authorize", "ciba_poll_pending", "ciba_push_latency")
			default:
				names = append(names, name)
			}
		}
		for _, name := range names {
			i := slices.IndexFunc(all, func(s scenario) bool { return s.name == name })
			if i < 0 {
				fmt.Fprintf(os.Stderr, "loadgen: unknown scenario %q\n", name)
				os.Exit(2)
			}
			run = append(run, all[i])
		}
	}

	tr := &http.Transport{
		Proxy:               nil, // never send loopback traffic to a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *concurrency * 2,
		MaxIdleConnsPerHost: *concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	lg := &loadgen{
		base:      strings.TrimSuffix(*base, "/"),
		transport: tr,
		client:    &http.Client{Transport: tr, CheckRedirect: noRedirects, Timeout: 30 * time.Second},
		signIns:   make(chan struct{}, signInParallelism),
	}

	dur := time.Duration(*seconds * float64(time.Second))
	wu := time.Duration(*warmup * float64(time.Second))
	fmt.Printf("loadgen: %s, %d workers, %s warm-up + %s per scenario, GOMAXPROCS default\n", lg.base, *concurrency, wu, dur)
	var results []*result
	for _, sc := range run {
		if sc.custom != nil {
			results = append(results, sc.custom(lg, *concurrency, wu, dur, *serverPID)...)
		} else {
			r := lg.run(sc, *concurrency, wu, dur, *serverPID)
			results = append(results, r)
			printLine(r)
			switch sc.name {
			case "device_poll_pending":
				devicePolls.printNotes()
			case "ciba_poll_pending":
				cibaPolls.printNotes()
			}
		}
		tr.CloseIdleConnections() // each scenario starts from cold connections
	}
	fmt.Println()
	printTable(os.Stdout, results)

	code := 0
	for _, r := range results {
		if r.failed() {
			code = 1
		}
	}
	os.Exit(code)
}

// checkLoopback refuses any target but this machine.
func checkLoopback(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-base %q must be an http:// URL", base)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-base %q is not a loopback address: this load generator only targets 127.0.0.1", base)
}

// printFreePorts prints n distinct ports the kernel picked for
// 127.0.0.1:0, holding them all open until every one is chosen.
func printFreePorts(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// waitReady polls the discovery document until it is served.
func waitReady(base string, limit time.Duration) error {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(base + "/.well-known/openid-configuration")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", base, limit, last)
}

// waitAnswer polls u until it answers with any status: the site is
// listening and its handlers are provisioned.
func waitAnswer(u string, limit time.Duration) error {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second, CheckRedirect: noRedirects}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(u)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not answering after %s: %v", u, limit, last)
}

// run drives one scenario: untimed per-worker setup and a preflight check,
// then a warm-up, then the measured window. Workers are closed loops: each
// sends its next request as soon as the previous one completed.
func (lg *loadgen) run(sc scenario, concurrency int, warmup, dur time.Duration, serverPID int) *result {
	r := &result{name: sc.name, unit: sc.unit, target: sc.target, concurrency: concurrency}
	setupStart := time.Now()
	setupCtx, cancelSetup := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelSetup()
	if sc.preflight != nil {
		if err := sc.preflight(setupCtx, lg); err != nil {
			r.setupErr = fmt.Errorf("preflight: %w", err)
			return r
		}
	}
	ops := make([]func(context.Context) error, concurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		setupErr error
	)
	for i := range ops {
		wg.Go(func() {
			op, err := sc.newWorker(setupCtx, lg, i)
			if err != nil {
				mu.Lock()
				setupErr = cmpErr(setupErr, fmt.Errorf("worker %d setup: %w", i, err))
				mu.Unlock()
				return
			}
			ops[i] = op
		})
	}
	wg.Wait()
	if setupErr != nil {
		r.setupErr = setupErr
		return r
	}
	// bench.sh waits for this line before it starts a server profile.
	fmt.Printf("  %-20s setup done in %s, running\n", sc.name, time.Since(setupStart).Round(time.Millisecond))

	type workerStats struct {
		ok, errs int64
		lat      []time.Duration
		firstErr string
	}
	stats := make([]workerStats, concurrency)
	// Requests in flight when the window closes are cancelled and not
	// counted: the deadline is hard.
	ctx, cancel := context.WithTimeout(context.Background(), warmup+dur)
	defer cancel()
	start := time.Now()
	measureFrom := start.Add(warmup)
	measureTo := measureFrom.Add(dur)
	var cpuStart cpuSample
	cpuTimer := time.AfterFunc(warmup, func() { cpuStart = sampleCPU(serverPID, gwOpts.upstreamPID) })
	for i, op := range ops {
		st := &stats[i]
		st.lat = make([]time.Duration, 0, 4096)
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx)
				t1 := time.Now()
				// An operation counts in the window it completes in;
				// those cut off by the deadline do not count at all.
				if t1.Before(measureFrom) || t1.After(measureTo) || ctx.Err() != nil {
					continue
				}
				if err != nil {
					st.errs++
					if st.firstErr == "" {
						st.firstErr = err.Error()
					}
					continue
				}
				st.ok++
				st.lat = append(st.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()
	cpuTimer.Stop()
	r.cpu = cpuStart.usage(sampleCPU(serverPID, gwOpts.upstreamPID))
	r.elapsed = dur
	for _, st := range stats {
		r.ok += st.ok
		r.errs += st.errs
		r.lat = append(r.lat, st.lat...)
		if r.firstErr == "" {
			r.firstErr = st.firstErr
		}
	}
	slices.Sort(r.lat)
	return r
}

func cmpErr(prev, err error) error {
	if prev != nil {
		return prev
	}
	return err
}

func scenarios() []scenario {
	return []scenario{
		{
			name: "client_credentials", unit: "tokens", target: 5000,
			newWorker: clientCredentialsWorker, preflight: clientCredentialsPreflight,
		},
		{
			name: "authcode_roundtrip", unit: "round trips", target: 500,
			newWorker: authCodeWorker, preflight: authCodePreflight,
		},
		{
			name: "jwks", unit: "requests",
			newWorker: getWorker("/.well-known/jwks.json"), preflight: getPreflight("/.well-known/jwks.json", "keys"),
		},
		{
			name: "discovery", unit: "requests",
			newWorker: getWorker("/.well-known/openid-configuration"), preflight: getPreflight("/.well-known/openid-configuration", "issuer"),
		},
		{
			name: "device_code", unit: "codes", target: 2000,
			newWorker: deviceCodeWorker, preflight: deviceCodePreflight,
		},
		{
			name: "device_poll_pending", unit: "polls", target: 5000,
			newWorker: devicePollWorker, preflight: devicePollPreflight,
		},
		{
			name: "ciba_authorize", unit: "requests", target: 2000,
			newWorker: cibaAuthorizeWorker, preflight: cibaAuthorizePreflight,
		},
		{
			name: "ciba_poll_pending", unit: "polls", target: 5000,
			newWorker: cibaPollWorkerSetup, preflight: cibaPollPreflight,
		},
		{
			name: "ciba_push_latency", unit: "approvals",
			custom: (*loadgen).runCIBAPush,
		},
		{
			name: "gateway", unit: "requests",
			custom: (*loadgen).runGateway,
		},
		{
			name: "guard", unit: "requests",
			custom: (*loadgen).runGuard,
		},
		{
			name: "token_vs_node", unit: "tokens",
			custom: (*loadgen).runTokenVsNode,
		},
	}
}

// --- client_credentials ---

var ccBody = url.Values{"grant_type": {"client_credentials"}, "audience": {apiAudience}}.Encode()

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

var backendAuth = basicAuth(backendID, backendSecret)

func (lg *loadgen) clientCredentials(ctx context.Context) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lg.base+"/oauth/token", strings.NewReader(ccBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", backendAuth)
	return lg.client.Do(req)
}

func clientCredentialsWorker(_ context.Context, lg *loadgen, _ int) (func(context.Context) error, error) {
	return func(ctx context.Context) error {
		resp, err := lg.clientCredentials(ctx)
		if err != nil {
			return err
		}
		return drain(resp, http.StatusOK)
	}, nil
}

func clientCredentialsPreflight(ctx context.Context, lg *loadgen) error {
	resp, err := lg.clientCredentials(ctx)
	if err != nil {
		return err
	}
	tok, err := decodeToken(resp)
	if err != nil {
		return err
	}
	if strings.Count(tok.AccessToken, ".") != 2 || !strings.EqualFold(tok.TokenType, "Bearer") {
		return fmt.Errorf("unexpected token response: token_type %q, access token %.20q…", tok.TokenType, tok.AccessToken)
	}
	return nil
}

// --- authcode_roundtrip ---

// browser is one worker's user agent: its own cookie jar (CSRF and SSO
// cookies) over the shared transport, never following redirects.
type browser struct {
	lg       *loadgen
	c        *http.Client
	redirect string
	auth     string
}

func (lg *loadgen) newBrowser() (*browser, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	return &browser{
		lg:       lg,
		c:        &http.Client{Transport: lg.transport, Jar: jar, CheckRedirect: noRedirects, Timeout: 30 * time.Second},
		redirect: lg.base + callbackPath,
		auth:     basicAuth(webappID, webappSecret),
	}, nil
}

// authParams is one authorization request with its PKCE verifier.
type authParams struct {
	state, nonce, verifier string
	query                  string
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (b *browser) newAuthParams() authParams {
	p := authParams{state: randomString()[:22], nonce: randomString()[:22], verifier: randomString()}
	sum := sha256.Sum256([]byte(p.verifier))
	p.query = url.Values{
		"client_id":             {webappID},
		"response_type":         {"code"},
		"redirect_uri":          {b.redirect},
		"scope":                 {"openid"},
		"state":                 {p.state},
		"nonce":                 {p.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}.Encode()
	return p
}

// codeFrom checks an authorization response and returns its code.
func (b *browser) codeFrom(resp *http.Response, p authParams) (string, error) {
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		return "", fmt.Errorf("authorization response: status %d, want a redirect with a code", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("authorization response: bad Location: %w", err)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("authorization response: error %s: %s", e, q.Get("error_description"))
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != b.redirect {
		return "", fmt.Errorf("authorization response: redirected to %s, want %s", got, b.redirect)
	}
	if q.Get("state") != p.state {
		return "", fmt.Errorf("authorization response: state %q, want %q", q.Get("state"), p.state)
	}
	if iss := q.Get("iss"); iss != b.lg.base {
		return "", fmt.Errorf("authorization response: iss %q, want %q (RFC 9207)", iss, b.lg.base)
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("authorization response: no code")
	}
	return code, nil
}

// signIn runs GET /authorize → login page → POST /login once, leaving the
// SSO cookie in the jar, and checks the code it is redirected with.
func (b *browser) signIn(ctx context.Context) error {
	select {
	case b.lg.signIns <- struct{}{}:
		defer func() { <-b.lg.signIns }()
	case <-ctx.Done():
		return ctx.Err()
	}
	p := b.newAuthParams()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.lg.base+"/authorize?"+p.query, nil)
	if err != nil {
		return err
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return err
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /authorize without a session: status %d, want the login page", resp.StatusCode)
	}
	fields, err := hiddenInputs(string(page))
	if err != nil {
		return err
	}
	for _, f := range []string{"csrf_token", "auth_request"} {
		if fields[f] == "" {
			return fmt.Errorf("login page has no %s field", f)
		}
	}
	form := url.Values{
		"username": {username}, "password": {password},
		"csrf_token": {fields["csrf_token"]}, "auth_request": {fields["auth_request"]},
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, b.lg.base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = b.c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := b.codeFrom(resp, p); err != nil {
		return fmt.Errorf("POST /login: %w", err)
	}
	return nil
}

// hiddenInputs returns the name → value of a page's hidden inputs.
func hiddenInputs(page string) (map[string]string, error) {
	out := map[string]string{}
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() == io.EOF {
				return out, nil
			}
			return nil, z.Err()
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			if t.Data != "input" {
				continue
			}
			var typ, name, value string
			for _, a := range t.Attr {
				switch a.Key {
				case "type":
					typ = a.Val
				case "name":
					name = a.Val
				case "value":
					value = a.Val
				}
			}
			if typ == "hidden" && name != "" {
				out[name] = value
			}
		}
	}
}

// roundTrip is one timed authorization: GET /authorize with the SSO
// cookie → 303 with a code, then the code exchange at the token endpoint.
// It returns the token response for the preflight to inspect.
func (b *browser) roundTrip(ctx context.Context, decode bool) (*tokenResponse, error) {
	p := b.newAuthParams()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.lg.base+"/authorize?"+p.query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	code, err := b.codeFrom(resp, p)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {b.redirect}, "code_verifier": {p.verifier},
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, b.lg.base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", b.auth)
	// The token endpoint is a back-channel call: no browser cookies.
	resp, err = b.lg.client.Do(req)
	if err != nil {
		return nil, err
	}
	if !decode {
		return nil, drain(resp, http.StatusOK)
	}
	return decodeToken(resp)
}

func authCodeWorker(ctx context.Context, lg *loadgen, _ int) (func(context.Context) error, error) {
	b, err := lg.newBrowser()
	if err != nil {
		return nil, err
	}
	if err := b.signIn(ctx); err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	return func(ctx context.Context) error {
		_, err := b.roundTrip(ctx, false)
		return err
	}, nil
}

func authCodePreflight(ctx context.Context, lg *loadgen) error {
	b, err := lg.newBrowser()
	if err != nil {
		return err
	}
	if err := b.signIn(ctx); err != nil {
		return fmt.Errorf("sign-in: %w", err)
	}
	tok, err := b.roundTrip(ctx, true)
	if err != nil {
		return err
	}
	if tok.AccessToken == "" || tok.IDToken == "" {
		return errors.New("code exchange: no access_token or no id_token for scope openid")
	}
	return nil
}

// --- jwks, discovery ---

func (lg *loadgen) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lg.base+path, nil)
	if err != nil {
		return nil, err
	}
	return lg.client.Do(req)
}

func getWorker(path string) func(context.Context, *loadgen, int) (func(context.Context) error, error) {
	return func(_ context.Context, lg *loadgen, _ int) (func(context.Context) error, error) {
		return func(ctx context.Context) error {
			resp, err := lg.get(ctx, path)
			if err != nil {
				return err
			}
			return drain(resp, http.StatusOK)
		}, nil
	}
}

func getPreflight(path, member string) func(context.Context, *loadgen) error {
	return func(ctx context.Context, lg *loadgen) error {
		resp, err := lg.get(ctx, path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
		var doc map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		if _, ok := doc[member]; !ok {
			return fmt.Errorf("GET %s: no %q member", path, member)
		}
		return nil
	}
}

// --- helpers ---

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// drain reads and closes the body (so the connection is reused) and
// checks the status.
func drain(resp *http.Response, want int) error {
	if resp.StatusCode == want {
		_, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Errorf("%s %s: status %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
}

func decodeToken(resp *http.Response) (*tokenResponse, error) {
	defer resp.Body.Close()
	var tok tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return nil, fmt.Errorf("token response (status %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token endpoint: status %d: %s: %s", resp.StatusCode, tok.Error, tok.Description)
	}
	return &tok, nil
}

// --- output ---

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func printLine(r *result) {
	if r.setupErr != nil {
		fmt.Printf("  %-20s FAILED: %v\n", r.name, r.setupErr)
		return
	}
	fmt.Printf("  %-20s %8d %s in %s (%d errors), %.0f/s, p50 %s p90 %s p99 %s\n",
		r.name, r.ok, r.unit, r.elapsed, r.errs, r.rate(), ms(r.pct(.50)), ms(r.pct(.90)), ms(r.pct(.99)))
	if r.firstErr != "" {
		fmt.Printf("  %-20s first error: %s\n", "", r.firstErr)
	}
	if r.cpu.ok {
		up := ""
		if r.cpu.upstreamOK {
			up = fmt.Sprintf(", upstream app %.2f", r.cpu.upstream)
		}
		if r.cpu.peerOK {
			up += fmt.Sprintf(", introspecting caddy %.2f", r.cpu.peer)
		}
		fmt.Printf("  %-20s CPU (cores of %d): server %s, load generator %.2f%s, other processes %.2f, interrupts %.2f, idle %.2f\n",
			"", machineCPUs(), r.cpu.serverString(), r.cpu.loadgen, up, r.cpu.other, r.cpu.irq, r.cpu.idle)
	}
}

func printTable(w io.Writer, results []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	noisy := false
	fmt.Fprintln(tw, "scenario\tconc\trequests\terrors\tthroughput\ttarget\tp50\tp90\tp99\tresult\tCPU srv/lg/other\t")
	for _, r := range results {
		target, verdict := "-", "info"
		if r.target > 0 {
			target = fmt.Sprintf("≥ %.0f/s", r.target)
			verdict = "BELOW"
			if r.rate() >= r.target {
				verdict = "PASS"
			}
		}
		if r.targetText != "" {
			target, verdict = r.targetText, r.verdict
		}
		switch {
		case r.setupErr != nil:
			verdict = "FAILED (setup)"
		case r.total() == 0:
			verdict = "FAILED (no requests)"
		case r.errRatio() > maxErrorsRatio:
			verdict += fmt.Sprintf(" (%.1f%% errors)", 100*r.errRatio())
		}
		cpu := "-"
		if r.cpu.ok {
			cpu = fmt.Sprintf("%s/%.2f/%.2f", r.cpu.serverString(), r.cpu.loadgen, r.cpu.other)
			if r.cpu.other > noisyCores {
				noisy = true
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f %s/s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.name, r.concurrency, r.total(), r.errs, r.rate(), r.unit, target,
			ms(r.pct(.50)), ms(r.pct(.90)), ms(r.pct(.99)), verdict, cpu)
	}
	tw.Flush()
	fmt.Fprintf(w, "CPU: average cores busy during each measured window (%d CPUs): server / load generator / every other process.\n", machineCPUs())
	if noisy {
		fmt.Fprintf(w, "WARNING: other processes used more than %.1f core during a scenario: those figures understate the server.\n", noisyCores)
	}
}

// noisyCores is how much CPU other processes may take before the table
// warns that the figures are not the server's own.
const noisyCores = 0.2

// --- CPU accounting (Linux /proc; absent elsewhere) ---

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

type cpuSample struct {
	ok                           bool
	at                           time.Time
	busy, irq, idle              float64 // machine-wide, seconds
	server, upstream, peer, self float64 // seconds
	serverOK, upstreamOK, peerOK bool
	// pinnedBusy is the busy time of the CPU the server is pinned to
	// (-server-cpu), seconds; pinnedOK when there is one.
	pinnedBusy float64
	pinnedOK   bool
	// lgPinnedBusy is the same for the load generator's CPU
	// (-loadgen-cpu).
	lgPinnedBusy float64
	lgPinnedOK   bool
}

type cpuUsage struct {
	ok, serverOK, upstreamOK, peerOK                  bool
	server, upstream, peer, loadgen, other, irq, idle float64 // average cores
	// pinnedOther is what every process but the server used of the CPU
	// the server is pinned to (-server-cpu), as cores: CPU another
	// process may have taken from it.
	pinnedOther float64
	pinnedOK    bool
	// lgPinnedOther is what every process but the load generator used of
	// its CPU (-loadgen-cpu), as cores: CPU taken from the load generator.
	lgPinnedOther float64
	lgPinnedOK    bool
}

// peerPID is the guard scenario's second Caddy (the one that introspects
// over HTTP), counted apart from other processes; 0 when there is none.
var peerPID int

func (u cpuUsage) serverString() string {
	if !u.serverOK {
		return "?"
	}
	return fmt.Sprintf("%.2f", u.server)
}

// sampleCPU reads the machine's and the processes' CPU times; upstreamPID
// (the gateway scenario's upstream app) may be 0.
func sampleCPU(serverPID, upstreamPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var ok bool
	if s.busy, s.irq, s.idle, ok = cpuTimes(line, "cpu"); !ok {
		return s
	}
	s.pinnedBusy, s.pinnedOK = cpuBusy(string(raw), serverCPU)
	s.lgPinnedBusy, s.lgPinnedOK = cpuBusy(string(raw), loadgenCPU)
	if s.self, ok = procCPU("self"); !ok {
		return s
	}
	if serverPID > 0 {
		s.server, s.serverOK = procCPU(strconv.Itoa(serverPID))
	}
	if upstreamPID > 0 {
		s.upstream, s.upstreamOK = procCPU(strconv.Itoa(upstreamPID))
	}
	if peerPID > 0 {
		s.peer, s.peerOK = procCPU(strconv.Itoa(peerPID))
	}
	s.ok = true
	return s
}

// procCPU returns a process's user+system CPU seconds from /proc/PID/stat.
func procCPU(pid string) (float64, bool) {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which may contain spaces: state is
	// field 3, utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (ut + st) / clockTicks, true
}

// serverCPU and loadgenCPU are the CPUs the server and the load generator
// are pinned to (-server-cpu, -loadgen-cpu), -1 for none.
var serverCPU, loadgenCPU = -1, -1

// cpuBusy is the busy time of CPU n in /proc/stat's text, false for n < 0
// or a CPU it does not list.
func cpuBusy(stat string, n int) (float64, bool) {
	if n < 0 {
		return 0, false
	}
	name := "cpu" + strconv.Itoa(n)
	for line := range strings.Lines(stat) {
		if strings.HasPrefix(line, name+" ") {
			busy, _, _, ok := cpuTimes(line, name)
			return busy, ok
		}
	}
	return 0, false
}

// cpuTimes reads a /proc/stat line named name: user nice system idle
// iowait irq softirq steal, in seconds. Interrupt time is apart: with
// loopback networking most of it is the benchmark's own packets. Steal
// (another VM) counts as busy: other processes.
func cpuTimes(line, name string) (busy, irq, idle float64, ok bool) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != name {
		return 0, 0, 0, false
	}
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0, 0, false
		}
		switch i {
		case 3, 4:
			idle += n / clockTicks
		case 5, 6:
			irq += n / clockTicks
		default:
			busy += n / clockTicks
		}
	}
	return busy, irq, idle, true
}

func (a cpuSample) usage(b cpuSample) cpuUsage {
	wall := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || wall <= 0 {
		return cpuUsage{}
	}
	u := cpuUsage{ok: true, serverOK: a.serverOK && b.serverOK}
	u.loadgen = (b.self - a.self) / wall
	if u.serverOK {
		u.server = (b.server - a.server) / wall
	}
	if u.pinnedOK = a.pinnedOK && b.pinnedOK && u.serverOK; u.pinnedOK {
		u.pinnedOther = max(0, (b.pinnedBusy-a.pinnedBusy)/wall-u.server)
	}
	if u.lgPinnedOK = a.lgPinnedOK && b.lgPinnedOK; u.lgPinnedOK {
		u.lgPinnedOther = max(0, (b.lgPinnedBusy-a.lgPinnedBusy)/wall-u.loadgen)
	}
	u.upstreamOK = a.upstreamOK && b.upstreamOK
	if u.upstreamOK {
		u.upstream = (b.upstream - a.upstream) / wall
	}
	u.peerOK = a.peerOK && b.peerOK
	if u.peerOK {
		u.peer = (b.peer - a.peer) / wall
	}
	u.other = max(0, (b.busy-a.busy)/wall-u.loadgen-u.server-u.upstream-u.peer)
	u.irq = (b.irq - a.irq) / wall
	u.idle = (b.idle - a.idle) / wall
	return u
}

// machineCPUs is the number of CPUs /proc/stat lists: the machine's, where
// runtime.NumCPU counts only those the load generator may run on (one,
// when token_vs_node pins it).
func machineCPUs() int {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for line := range strings.Lines(string(raw)) {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}
