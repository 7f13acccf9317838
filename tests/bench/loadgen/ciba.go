package main

// The CIBA scenarios (OpenID Client-Initiated Backchannel Authentication
// Core 1.0): backchannel authentication requests at /bc-authorize, the
// client's polls of the token endpoint while the user has not decided yet
// (authorization_pending), and, for a push client, the time from the
// user's approval (here through the admin API) to the token response
// arriving at the client's notification endpoint, which the load generator
// serves itself.
//
// Polls are paced as pacedPolls says. Requests are spread over
// the bench Caddyfile's CIBA users so that no user's pending list or rate
// limit dominates; the bench Caddyfile also raises the limits, so that the
// figures are the server's, not its throttling.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Names of the bench Caddyfile's CIBA clients and users (bench.sh).
const (
	cibaClientID     = "bench-ciba"
	cibaClientSecret = "bench-ciba-secret"
	cibaPushID       = "bench-ciba-push"
	cibaPushSecret   = "bench-ciba-push-secret"
	cibaGrant        = "urn:openid:params:grant-type:ciba"
	// cibaPushPath is the push client's notification endpoint path on
	// the -ciba-receiver address.
	cibaPushPath = "/push"
	// cibaNotifyTimeout bounds the wait for one push notification.
	cibaNotifyTimeout = 10 * time.Second
	// cibaPushWarmup is how many push round trips run untimed first.
	cibaPushWarmup = 20
	// cibaPushTarget is the p99 target of approval → push latency.
	cibaPushTarget = 50 * time.Millisecond
)

// cibaOpts are the CIBA scenarios' flags.
var cibaOpts struct {
	adminBase       string // Caddy's admin endpoint
	receiver        string // host:port of the push client's notification endpoint
	users           int    // ciba-user-000 … : users the requests name
	pushUsers       int    // ciba-push-00 … : one per push worker
	requests        int    // ciba_poll_pending: requests polled in turn
	pushRequests    int    // ciba_push_latency: timed approvals
	pushConcurrency int    // ciba_push_latency: workers
}

// cibaPolls is the ciba_poll_pending scenario.
var cibaPolls = &pacedPolls{name: "ciba_poll_pending", noun: "request", flag: "-ciba-requests", pool: &cibaOpts.requests, auth: cibaBasic}

var cibaBasic = basicAuth(cibaClientID, cibaClientSecret)

func cibaUser(i int) string { return fmt.Sprintf("ciba-user-%03d", i%max(cibaOpts.users, 1)) }

// cibaAck is the backchannel authentication response (CIBA §7.3).
type cibaAck struct {
	AuthReqID string `json:"auth_req_id"`
	ExpiresIn int    `json:"expires_in"`
	Interval  int    `json:"interval"`
}

func (lg *loadgen) bcAuthorize(ctx context.Context, auth string, form url.Values) (*http.Response, error) {
	return lg.postForm(ctx, "/bc-authorize", auth, form.Encode())
}

// newCIBARequest starts one request and checks the acknowledgement.
func (lg *loadgen) newCIBARequest(ctx context.Context, auth string, form url.Values) (*cibaAck, error) {
	resp, err := lg.bcAuthorize(ctx, auth, form)
	if err != nil {
		return nil, err
	}
	var ack cibaAck
	body, err := readOK(resp, "POST /bc-authorize", &ack)
	if err != nil {
		return nil, err
	}
	if ack.AuthReqID == "" || ack.ExpiresIn <= 0 {
		return nil, fmt.Errorf("POST /bc-authorize: incomplete response %s", body)
	}
	return &ack, nil
}

func cibaPollForm(i int) url.Values {
	return url.Values{"scope": {"openid"}, "login_hint": {cibaUser(i)}}
}

// --- ciba_authorize ---

func cibaAuthorizeWorker(_ context.Context, lg *loadgen, id int) (func(context.Context) error, error) {
	// Each worker walks the users from its own offset.
	n := id
	return func(ctx context.Context) error {
		n += benchConcurrency
		resp, err := lg.bcAuthorize(ctx, cibaBasic, cibaPollForm(n))
		if err != nil {
			return err
		}
		return drain(resp, http.StatusOK)
	}, nil
}

func cibaAuthorizePreflight(ctx context.Context, lg *loadgen) error {
	ack, err := lg.newCIBARequest(ctx, cibaBasic, cibaPollForm(0))
	if err != nil {
		return err
	}
	if ack.Interval <= 0 {
		return fmt.Errorf("POST /bc-authorize: a poll client's response has no interval: %+v", ack)
	}
	return nil
}

// --- ciba_poll_pending ---

func cibaPollBody(authReqID string) string {
	return url.Values{"grant_type": {cibaGrant}, "auth_req_id": {authReqID}}.Encode()
}

func cibaPollWorkerSetup(ctx context.Context, lg *loadgen, id int) (func(context.Context) error, error) {
	return cibaPolls.worker(ctx, lg, func(ctx context.Context, i int) (pendingPoll, error) {
		ack, err := lg.newCIBARequest(ctx, cibaBasic, cibaPollForm(id+i*benchConcurrency))
		if err != nil {
			return pendingPoll{}, err
		}
		// The interval runs from the request, in case the server counts
		// it as the first contact.
		return pendingPoll{body: cibaPollBody(ack.AuthReqID), interval: time.Duration(ack.Interval) * time.Second, since: time.Now()}, nil
	})
}

// cibaPollPreflight checks the rule the scenario relies on: a poll after
// the interval is authorization_pending, an immediate second one
// slow_down.
func cibaPollPreflight(ctx context.Context, lg *loadgen) error {
	ack, err := lg.newCIBARequest(ctx, cibaBasic, cibaPollForm(0))
	if err != nil {
		return err
	}
	if ack.Interval <= 0 {
		return fmt.Errorf("POST /bc-authorize: no interval for a poll client: %+v", ack)
	}
	time.Sleep(time.Duration(ack.Interval) * time.Second) // the protocol's wait
	return cibaPolls.preflight(ctx, lg, cibaPollBody(ack.AuthReqID), "request", ack.Interval)
}

// --- ciba_push_latency ---

// pushReceiver is the push client's notification endpoint: it stamps each
// arrival and hands it to the worker waiting for that auth_req_id.
type pushReceiver struct {
	mu      sync.Mutex
	waiting map[string]chan pushArrival
	strays  atomic.Int64
}

// pushArrival is one push notification as the receiver saw it.
type pushArrival struct {
	at   time.Time
	auth string
	body map[string]any
	err  error
}

func (p *pushReceiver) expect(authReqID string) chan pushArrival {
	ch := make(chan pushArrival, 1)
	p.mu.Lock()
	p.waiting[authReqID] = ch
	p.mu.Unlock()
	return ch
}

func (p *pushReceiver) forget(authReqID string) {
	p.mu.Lock()
	delete(p.waiting, authReqID)
	p.mu.Unlock()
}

func (p *pushReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := pushArrival{at: time.Now(), auth: r.Header.Get("Authorization")}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	switch {
	case err != nil:
		a.err = err
	case r.Method != http.MethodPost || r.URL.Path != cibaPushPath:
		a.err = fmt.Errorf("notification %s %s, want POST %s", r.Method, r.URL.Path, cibaPushPath)
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		a.err = fmt.Errorf("notification Content-Type %q", r.Header.Get("Content-Type"))
	default:
		a.err = json.Unmarshal(raw, &a.body)
	}
	id, _ := a.body["auth_req_id"].(string)
	p.mu.Lock()
	ch := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ch == nil {
		p.strays.Add(1)
	} else {
		ch <- a
	}
	// CIBA §10.3: the client answers 204.
	w.WriteHeader(http.StatusNoContent)
}

// pendingRequest is a pending request as the admin API lists it.
type pendingRequest struct {
	ID             string `json:"id"`
	BindingMessage string `json:"binding_message"`
	Status         string `json:"status"`
}

func (lg *loadgen) admin(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, cibaOpts.adminBase+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := lg.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

// pushRoundTrip starts a push request for user, finds it in the admin
// API's pending list, approves it there and waits for the push. It
// returns the approval → arrival latency and the approve call's own.
func (lg *loadgen) pushRoundTrip(ctx context.Context, rcv *pushReceiver, user string, seq int, deep bool) (time.Duration, time.Duration, error) {
	token := randomString()
	msg := fmt.Sprintf("bench %s #%d", user, seq)
	ack, err := lg.newCIBARequest(ctx, basicAuth(cibaPushID, cibaPushSecret), url.Values{
		"scope": {"openid"}, "login_hint": {user}, "binding_message": {msg}, "client_notification_token": {token},
	})
	if err != nil {
		return 0, 0, err
	}
	arrived := rcv.expect(ack.AuthReqID)
	defer rcv.forget(ack.AuthReqID)
	raw, err := lg.admin(ctx, http.MethodGet, "/portcullis/ciba?user="+url.QueryEscape(user))
	if err != nil {
		return 0, 0, err
	}
	var list []pendingRequest
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, 0, fmt.Errorf("GET /portcullis/ciba: %w", err)
	}
	i := slices.IndexFunc(list, func(r pendingRequest) bool { return r.BindingMessage == msg })
	if i < 0 {
		return 0, 0, fmt.Errorf("GET /portcullis/ciba?user=%s does not list %q", user, msg)
	}
	t0 := time.Now()
	if _, err := lg.admin(ctx, http.MethodPost, "/portcullis/ciba/"+url.PathEscape(list[i].ID)+"/approve"); err != nil {
		return 0, 0, err
	}
	approve := time.Since(t0)
	timer := time.NewTimer(cibaNotifyTimeout)
	defer timer.Stop()
	var a pushArrival
	select {
	case a = <-arrived:
	case <-timer.C:
		return 0, 0, fmt.Errorf("no push for %s within %s of the approval", msg, cibaNotifyTimeout)
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	if a.err != nil {
		return 0, 0, a.err
	}
	if a.auth != "Bearer "+token {
		return 0, 0, fmt.Errorf("push Authorization %q, want Bearer and the client_notification_token", a.auth)
	}
	if e, _ := a.body["error"].(string); e != "" {
		return 0, 0, fmt.Errorf("push: error %s: %v", e, a.body["error_description"])
	}
	if a.body["access_token"] == nil || a.body["id_token"] == nil {
		return 0, 0, fmt.Errorf("push without access_token or id_token: %v", a.body)
	}
	if deep {
		if err := checkPushIDToken(a.body, ack.AuthReqID); err != nil {
			return 0, 0, err
		}
	}
	return a.at.Sub(t0), approve, nil
}

// checkPushIDToken checks, without verifying the signature (the tests
// do), that a pushed ID token names the auth_req_id (CIBA §10.3.1).
func checkPushIDToken(body map[string]any, authReqID string) error {
	idt, _ := body["id_token"].(string)
	parts := strings.Split(idt, ".")
	if len(parts) != 3 {
		return errors.New("pushed id_token is not a JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("pushed id_token: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return fmt.Errorf("pushed id_token: %w", err)
	}
	if claims["urn:openid:params:jwt:claim:auth_req_id"] != authReqID || claims["at_hash"] == nil {
		return fmt.Errorf("pushed id_token lacks urn:openid:params:jwt:claim:auth_req_id or at_hash: %v", claims)
	}
	return nil
}

// runCIBAPush is the ciba_push_latency scenario: -ciba-push-requests
// approvals by -ciba-push-concurrency workers (each with its own user, so
// its pending list holds one request), after an untimed warm-up.
func (lg *loadgen) runCIBAPush(_ int, _, _ time.Duration, serverPID int) []*result {
	conc := cibaOpts.pushConcurrency
	r := &result{name: "ciba_push_latency", unit: "approvals", concurrency: conc,
		targetText: "p99 < " + ms(cibaPushTarget)}
	fail := func(err error) []*result {
		r.setupErr = err
		printLine(r)
		return []*result{r}
	}
	if cibaOpts.adminBase == "" || cibaOpts.receiver == "" {
		return fail(errors.New("needs -admin-base and -ciba-receiver"))
	}
	if conc > cibaOpts.pushUsers {
		return fail(fmt.Errorf("-ciba-push-concurrency %d is more than the %d push users", conc, cibaOpts.pushUsers))
	}
	l, err := net.Listen("tcp", cibaOpts.receiver)
	if err != nil {
		return fail(fmt.Errorf("notification receiver: %w", err))
	}
	rcv := &pushReceiver{waiting: map[string]chan pushArrival{}}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	setupStart := time.Now()
	if _, _, err := lg.pushRoundTrip(ctx, rcv, "ciba-push-00", 0, true); err != nil {
		return fail(fmt.Errorf("preflight: %w", err))
	}
	fmt.Printf("  %-20s setup done in %s, running\n", r.name, time.Since(setupStart).Round(time.Millisecond))

	phase := func(total int, seq0 int) (lat, approve []time.Duration, errs int64, firstErr string) {
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			next atomic.Int64
		)
		for w := range conc {
			user := fmt.Sprintf("ciba-push-%02d", w)
			wg.Go(func() {
				for {
					n := int(next.Add(1))
					if n > total || ctx.Err() != nil {
						return
					}
					l, a, err := lg.pushRoundTrip(ctx, rcv, user, seq0+n, false)
					mu.Lock()
					if err != nil {
						errs++
						if firstErr == "" {
							firstErr = err.Error()
						}
					} else {
						lat = append(lat, l)
						approve = append(approve, a)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return lat, approve, errs, firstErr
	}
	phase(cibaPushWarmup, 1_000_000)
	cpuStart := sampleCPU(serverPID, gwOpts.upstreamPID)
	start := time.Now()
	lat, approve, errs, firstErr := phase(cibaOpts.pushRequests, 0)
	r.elapsed = time.Since(start)
	r.cpu = cpuStart.usage(sampleCPU(serverPID, gwOpts.upstreamPID))
	r.ok, r.errs, r.firstErr, r.lat = int64(len(lat)), errs, firstErr, lat
	slices.Sort(r.lat)
	slices.Sort(approve)
	r.verdict = "BELOW"
	if len(r.lat) > 0 && r.pct(.99) < cibaPushTarget {
		r.verdict = "PASS"
	}
	fmt.Printf("  %-20s %8d %s by %d workers in %s (%d errors), approve → push p50 %s p90 %s p99 %s max %s\n",
		r.name, r.ok, r.unit, conc, r.elapsed.Round(time.Millisecond), r.errs, ms(r.pct(.50)), ms(r.pct(.90)), ms(r.pct(.99)), ms(r.pct(1)))
	if len(approve) > 0 {
		ar := &result{lat: approve}
		fmt.Printf("  %-20s the approve call itself (admin API): p50 %s p90 %s p99 %s\n", "", ms(ar.pct(.50)), ms(ar.pct(.90)), ms(ar.pct(.99)))
	}
	if r.firstErr != "" {
		fmt.Printf("  %-20s first error: %s\n", "", r.firstErr)
	}
	if n := rcv.strays.Load(); n > 0 {
		fmt.Printf("  %-20s %d notifications nobody waited for (late, repeated or unknown auth_req_id)\n", "", n)
	}
	if r.cpu.ok {
		fmt.Printf("  %-20s CPU (cores of %d): server %s, load generator %.2f, other processes %.2f, interrupts %.2f, idle %.2f\n",
			"", machineCPUs(), r.cpu.serverString(), r.cpu.loadgen, r.cpu.other, r.cpu.irq, r.cpu.idle)
	}
	return []*result{r}
}
