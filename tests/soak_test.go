package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakCaddyfile is one Caddy with everything under load at once: the
// embedded server ({{.Port}}), a site behind oidc_login ({{.AppPort}}) and
// an API behind bearer_auth ({{.Vars.GuardPort}}, /jwt/ and /opaque/),
// both in front of the test's upstream, a device client and a CIBA poll
// client. Everything the load leaves in the store expires within a minute
// or two (opaque tokens 1m, device codes 1m, CIBA requests 1m) and the
// server sweeps every minute, so a long run reaches a steady state; alice
// has a cheap password hash so that the sign-ins of the load cost what
// the server does, not argon2's 64 MiB.
const soakCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		signing_alg ES256
		insecure_cookies
		device_code_ttl 1m
		device_poll_interval 1s
		ciba {
			request_ttl 1m
			poll_interval 1s
			max_pending_per_user 50
			rate_limit_per_client 200 1s
			rate_limit_per_user 600 1m
		}
		user alice {
			password_hash "{{.Vars.AliceHash}}"
			email alice@example.com
			name "Alice Example"
			groups admins
		}
		client gateway {
			name "Protected App"
			secret gateway-secret
			redirect_uris http://127.0.0.1:{{.AppPort}}/oauth2/callback
			scopes openid profile email groups
		}
		client backend {
			secret backend-secret
			grant_types client_credentials
			api_access https://api.example.com read:items
			api_access https://opaque.example.com read:stuff
		}
		client tv {
			public
			grant_types device_code
		}
		client ciba-poll {
			secret poll-secret
			grant_types ciba
		}
		api https://api.example.com {
			scopes read:items
			token_format jwt
		}
		api https://opaque.example.com {
			scopes read:stuff
			token_format opaque
			access_token_ttl 1m
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
http://127.0.0.1:{{.AppPort}} {
	bind 127.0.0.1
	oidc_login {
		issuer http://127.0.0.1:{{.Port}}
		client_id gateway
		client_secret gateway-secret
		scopes openid profile email groups
		insecure_cookies
	}
	reverse_proxy {{.Vars.Upstream}}
}
http://127.0.0.1:{{.Vars.GuardPort}} {
	bind 127.0.0.1
	handle /jwt/* {
		bearer_auth read:items {
			issuer http://127.0.0.1:{{.Port}}
			audience https://api.example.com
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /opaque/* {
		bearer_auth read:stuff {
			issuer http://127.0.0.1:{{.Port}}
			audience https://opaque.example.com
		}
		reverse_proxy {{.Vars.Upstream}}
	}
}
`

// The shape of the soak.
const (
	// soakDefault is the run's length unless PORTCULLIS_SOAK says another
	// (a Go duration: tests/soak.sh runs 10m).
	soakDefault = 60 * time.Second
	// soakEvery is the sampling period.
	soakEvery = 10 * time.Second
	// soakMinWarmUp is the earliest sample that counts as warmed up; a
	// third of the run when that is later.
	soakMinWarmUp = 20 * time.Second
	// soakGrowth bounds the last sample against the warm-up one: RSS and
	// goroutines may grow by 10%...
	soakGrowth = 1.10
	// ...and goroutines by soakGoroutineSlack when that is more: the count
	// is a few dozen and still moves a little with the connections open at
	// the moment of the sample, which 10% of a few dozen does not cover.
	soakGoroutineSlack = 10
	// soakGoroutineReads is how many goroutine counts make one sample (the
	// least is kept).
	soakGoroutineReads = 3
	// Pacing: each paced worker sends at most one request per period, so
	// that the soak measures the server at a steady load rather than the
	// speed of two shared cores.
	soakGatewayPeriod = 40 * time.Millisecond
	soakGuardPeriod   = 40 * time.Millisecond
	soakTokenPeriod   = 100 * time.Millisecond
	soakLoginPeriod   = 2 * time.Second
	// Guard workers get a new token this often, as a client would before
	// the 1m opaque tokens expire.
	soakTokenRenewal = 30 * time.Second
	// Device and CIBA workers keep this many requests pending, each polled
	// at its interval, and replace one after soakPendingPolls polls.
	soakDevices      = 6
	soakCIBARequests = 4
	soakPendingPolls = 4
	// soakPollMargin is added to the announced interval, measured from
	// the previous answer (RFC 8628 §3.5).
	soakPollMargin = 50 * time.Millisecond
)

// soakStats counts every response of the soak by kind and status.
type soakStats struct {
	mu         sync.Mutex
	byKind     map[string]map[int]int
	total      int
	serverErrs int
	failures   []string // unexpected answers, transport errors
	failCount  int
}

func newSoakStats() *soakStats { return &soakStats{byKind: map[string]map[int]int{}} }

// record counts one response of kind; status 0 is a transport error.
func (s *soakStats) record(kind string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKind[kind] == nil {
		s.byKind[kind] = map[int]int{}
	}
	s.byKind[kind][status]++
	s.total++
	if status >= 500 {
		s.serverErrs++
	}
}

// fail records an unexpected answer (the first ones verbatim).
func (s *soakStats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCount++
	if len(s.failures) < 20 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

// snapshot returns the total and the counts by kind.
func (s *soakStats) snapshot() (int, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	by := map[string]int{}
	for kind, statuses := range s.byKind {
		for _, n := range statuses {
			by[kind] += n
		}
	}
	return s.total, by
}

// soakSample is one row of the table.
type soakSample struct {
	at time.Duration
	// rssKB is VmRSS, the sum of anonKB (heap, stacks) and fileKB (the
	// binary's pages and the bbolt file's, which is mapped).
	rssKB, anonKB, fileKB int
	// dbKB is the size of the bbolt file.
	dbKB       int64
	goroutines int
	requests   int
	byKind     map[string]int
}

// soak is one soak run: the server, its clients and the counters.
type soak struct {
	t        *testing.T
	g        *Gateway
	d        *Discovery
	guardURL string
	hc       *http.Client // shared keep-alive transport, no redirects
	stats    *soakStats
	done     chan struct{}
}

// do sends a request and reads the whole answer; a transport error is
// counted as status 0 and a failure.
func (s *soak) do(kind string, c *http.Client, req *http.Request) (int, []byte, http.Header) {
	resp, err := c.Do(req)
	if err != nil {
		s.stats.record(kind, 0)
		s.stats.fail("%s %s %s: %v", kind, req.Method, req.URL, err)
		return 0, nil, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		s.stats.record(kind, 0)
		s.stats.fail("%s %s %s: reading the answer: %v", kind, req.Method, req.URL, err)
		return 0, nil, nil
	}
	s.stats.record(kind, resp.StatusCode)
	return resp.StatusCode, body, resp.Header
}

// postForm posts form, with client_secret_basic unless clientID is empty,
// and decodes a JSON object answer.
func (s *soak) postForm(kind, target string, form url.Values, clientID, secret string) (int, map[string]any) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		s.stats.fail("%s: %v", kind, err)
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if clientID != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	status, body, _ := s.do(kind, s.hc, req)
	var obj map[string]any
	_ = json.Unmarshal(body, &obj)
	return status, obj
}

// expect records a failure when an answer is not the one wanted.
func (s *soak) expect(kind string, ok bool, status int, got any) {
	if !ok && status != 0 { // transport errors are already recorded
		s.stats.fail("%s: unexpected answer %d: %v", kind, status, got)
	}
}

// wait returns false when the soak is over before d has passed.
func (s *soak) wait(d time.Duration) bool {
	if d <= 0 {
		return !closed(s.done)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.done:
		return false
	case <-timer.C:
		return true
	}
}

// paced runs step once per period until the soak is over.
func (s *soak) paced(period time.Duration, step func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
			step()
		}
	}
}

// clientCredentials gets a token for audience as backend.
func (s *soak) clientCredentials(audience, scope string) string {
	kind := "token cc jwt"
	if audience == opaqueAudience {
		kind = "token cc opaque"
	}
	status, obj := s.postForm(kind, s.d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "audience": {audience}, "scope": {scope}},
		backendID, backendSecret)
	tok, _ := obj["access_token"].(string)
	s.expect(kind, status == http.StatusOK && tok != "", status, obj)
	return tok
}

// gatewayWorker sends signed-in navigations with browser's session cookie:
// each must reach the upstream as alice.
func (s *soak) gatewayWorker(browser *http.Client) {
	s.paced(soakGatewayPeriod, func() {
		req, _ := http.NewRequest(http.MethodGet, s.g.AppURL+"/app/page", nil)
		req.Header.Set("Accept", "text/html")
		status, body, _ := s.do("gateway", browser, req)
		s.expect("gateway", status == http.StatusOK && string(body) == "hello alice", status, string(body))
	})
}

// loginWorker signs a fresh browser in through the gateway now and then:
// the redirect to the provider, its login page, the callback, the session.
func (s *soak) loginWorker() {
	s.paced(soakLoginPeriod, func() {
		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Transport: s.hc.Transport, Jar: jar, Timeout: requestTimeout, CheckRedirect: s.hc.CheckRedirect}
		if err := s.signIn(browser, s.g.AppURL+"/app/login-check"); err != nil {
			s.stats.fail("gateway sign-in: %v", err)
		}
	})
}

// signIn walks a browser from target through the sign-in and back,
// following redirects and filling the login and consent forms, and wants
// the upstream's page for alice at the end.
func (s *soak) signIn(browser *http.Client, target string) error {
	method, next := http.MethodGet, target
	var form url.Values
	var steps []string
	for range 12 {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next, body)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "text/html")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
		}
		status, page, header := s.do("gateway sign-in", browser, req)
		steps = append(steps, fmt.Sprintf("%s %s -> %d", method, next, status))
		switch {
		case status == 0:
			return fmt.Errorf("transport error; steps %q", steps)
		case status >= 300 && status < 400:
			loc, err := req.URL.Parse(header.Get("Location"))
			if err != nil {
				return err
			}
			method, next, form = http.MethodGet, loc.String(), nil
			continue
		case status != http.StatusOK:
			return fmt.Errorf("status %d: %s; steps %q", status, pageText(page), steps)
		case next == target:
			if string(page) != "hello alice" {
				return fmt.Errorf("landed on %q; steps %q", page, steps)
			}
			return nil
		}
		forms, err := ParseForms(req.URL, page)
		if err != nil || len(forms) == 0 {
			return fmt.Errorf("a page without a form: %s; steps %q", pageText(page), steps)
		}
		f := forms[0]
		switch {
		case f.HasField("password"):
			f.Fields.Set("username", aliceUsername)
			f.Fields.Set("password", alicePassword)
			if b, ok := f.Button("action", "login"); ok {
				f.Fields.Set(b.Name, b.Value)
			}
		case hasButtonNamed(f, "decision"):
			f.Fields.Set("decision", "allow")
		default:
			return fmt.Errorf("unexpected page: %s; steps %q", pageText(page), steps)
		}
		method, next, form = http.MethodPost, f.Action.String(), f.Fields
	}
	return fmt.Errorf("no landing after 12 requests; steps %q", steps)
}

// guardWorker calls the API with a JWT and an opaque token in turn (and
// now and then a junk one, which must be refused), renewing its tokens
// as a client would.
func (s *soak) guardWorker() {
	var jwt, opaque string
	var renewed time.Time
	n := 0
	s.paced(soakGuardPeriod, func() {
		if time.Since(renewed) > soakTokenRenewal || jwt == "" || opaque == "" {
			jwt, opaque = s.clientCredentials(apiAudience, "read:items"), s.clientCredentials(opaqueAudience, "read:stuff")
			renewed = time.Now()
		}
		n++
		kind, path, tok, want := "guard jwt", "/jwt/items", jwt, http.StatusOK
		switch {
		case n%25 == 0:
			kind, path, tok, want = "guard junk token", "/opaque/items", "junk-"+strconv.Itoa(n), http.StatusUnauthorized
		case n%2 == 0:
			kind, path, tok = "guard opaque", "/opaque/items", opaque
		}
		req, _ := http.NewRequest(http.MethodGet, s.guardURL+path, nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		status, body, _ := s.do(kind, s.hc, req)
		s.expect(kind, status == want, status, string(body))
	})
}

// tokenWorker asks the token endpoint for client-credentials tokens, JWT
// and opaque in turn.
func (s *soak) tokenWorker() {
	n := 0
	s.paced(soakTokenPeriod, func() {
		n++
		if n%2 == 0 {
			s.clientCredentials(opaqueAudience, "read:stuff")
		} else {
			s.clientCredentials(apiAudience, "read:items")
		}
	})
}

// pendingReq is a device code or CIBA request being polled.
type pendingReq struct {
	id       string // device_code or auth_req_id
	binding  string // CIBA binding message, to find it in the admin API
	interval time.Duration
	next     time.Time
	polls    int
}

// earliest returns the index of the request due first.
func earliest(reqs []*pendingReq) int {
	best := 0
	for i, r := range reqs {
		if r.next.Before(reqs[best].next) {
			best = i
		}
	}
	return best
}

// deviceWorker keeps soakDevices device codes pending and polls each at its
// interval; each poll must be authorization_pending. A device is replaced
// by a new device authorization after soakPendingPolls polls.
func (s *soak) deviceWorker() {
	endpoint, _ := s.d.Raw["device_authorization_endpoint"].(string)
	start := func() *pendingReq {
		status, obj := s.postForm("device authorization", endpoint, url.Values{"client_id": {deviceClientID}, "scope": {"openid"}}, "", "")
		code, _ := obj["device_code"].(string)
		interval, _ := obj["interval"].(float64)
		s.expect("device authorization", status == http.StatusOK && code != "" && interval > 0, status, obj)
		return &pendingReq{id: code, interval: time.Duration(interval) * time.Second, next: time.Now().Add(time.Duration(interval)*time.Second + soakPollMargin)}
	}
	var devices []*pendingReq
	for range soakDevices {
		devices = append(devices, start())
	}
	for {
		i := earliest(devices)
		dv := devices[i]
		if !s.wait(time.Until(dv.next)) {
			return
		}
		if dv.id == "" || dv.polls >= soakPendingPolls {
			devices[i] = start()
			continue
		}
		status, obj := s.postForm("device poll", s.d.TokenEndpoint, url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dv.id}, "client_id": {deviceClientID},
		}, "", "")
		dv.polls++
		if obj["error"] == "slow_down" {
			dv.interval += 5 * time.Second // RFC 8628 §3.5
		}
		s.expect("device poll", status == http.StatusBadRequest && obj["error"] == "authorization_pending", status, obj)
		dv.next = time.Now().Add(dv.interval + soakPollMargin)
	}
}

// cibaWorker keeps soakCIBARequests CIBA requests for alice pending and
// polls each at its interval (authorization_pending); after
// soakPendingPolls polls an operator approves or denies it through the
// admin API, and the next poll gets the tokens or access_denied.
func (s *soak) cibaWorker() {
	endpoint, _ := s.d.Raw["backchannel_authentication_endpoint"].(string)
	n, decided := 0, 0
	start := func() *pendingReq {
		n++
		binding := "soak " + strconv.Itoa(n)
		status, obj := s.postForm("ciba request", endpoint, url.Values{"scope": {"openid"}, "login_hint": {aliceUsername}, "binding_message": {binding}},
			"ciba-poll", "poll-secret")
		id, _ := obj["auth_req_id"].(string)
		interval, _ := obj["interval"].(float64)
		s.expect("ciba request", status == http.StatusOK && id != "" && interval > 0, status, obj)
		return &pendingReq{id: id, binding: binding, interval: time.Duration(interval) * time.Second,
			next: time.Now().Add(time.Duration(interval)*time.Second + soakPollMargin)}
	}
	var reqs []*pendingReq
	for range soakCIBARequests {
		reqs = append(reqs, start())
	}
	for {
		i := earliest(reqs)
		rq := reqs[i]
		if !s.wait(time.Until(rq.next)) {
			return
		}
		if rq.id == "" {
			reqs[i] = start()
			continue
		}
		if rq.polls == soakPendingPolls {
			decided++
			approve := decided%2 == 0
			s.decideCIBA(rq.binding, approve)
			status, obj := s.postForm("ciba redeem", s.d.TokenEndpoint, url.Values{"grant_type": {cibaGrant}, "auth_req_id": {rq.id}}, "ciba-poll", "poll-secret")
			if approve {
				s.expect("ciba redeem", status == http.StatusOK && obj["id_token"] != nil, status, obj)
			} else {
				s.expect("ciba redeem", status == http.StatusBadRequest && obj["error"] == "access_denied", status, obj)
			}
			reqs[i] = start()
			continue
		}
		status, obj := s.postForm("ciba poll", s.d.TokenEndpoint, url.Values{"grant_type": {cibaGrant}, "auth_req_id": {rq.id}}, "ciba-poll", "poll-secret")
		rq.polls++
		if obj["error"] == "slow_down" {
			rq.interval += 5 * time.Second
		}
		s.expect("ciba poll", status == http.StatusBadRequest && obj["error"] == "authorization_pending", status, obj)
		rq.next = time.Now().Add(rq.interval + soakPollMargin)
	}
}

// decideCIBA approves or denies, through the admin API, alice's pending
// request with that binding message.
func (s *soak) decideCIBA(binding string, approve bool) {
	req, _ := http.NewRequest(http.MethodGet, s.g.AdminURL+"/portcullis/ciba?user="+aliceUsername, nil)
	status, body, _ := s.do("ciba admin", s.hc, req)
	var list []map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
		s.expect("ciba admin", false, status, string(body))
		return
	}
	id := ""
	for _, r := range list {
		if r["binding_message"] == binding {
			id, _ = r["id"].(string)
		}
	}
	if id == "" {
		s.stats.fail("ciba admin: no pending request %q among %d", binding, len(list))
		return
	}
	action := "deny"
	if approve {
		action = "approve"
	}
	req, _ = http.NewRequest(http.MethodPost, s.g.AdminURL+"/portcullis/ciba/"+id+"/"+action, nil)
	req.Header.Set("Content-Type", "application/json")
	status, body, _ = s.do("ciba admin", s.hc, req)
	s.expect("ciba admin", status == http.StatusOK, status, string(body))
}

// sample reads the process's resident set and Caddy's goroutine count.
func (s *soak) sample(at time.Duration) (soakSample, error) {
	smp := soakSample{at: at}
	total, by := s.stats.snapshot()
	smp.requests, smp.byKind = total, by
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.g.PID()))
	if err != nil {
		return smp, err
	}
	defer f.Close()
	fields := map[string]*int{"VmRSS:": &smp.rssKB, "RssAnon:": &smp.anonKB, "RssFile:": &smp.fileKB}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), "\t")
		if dst := fields[name]; dst != nil {
			if *dst, err = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB")); err != nil {
				return smp, fmt.Errorf("%s %q: %w", name, v, err)
			}
		}
	}
	if smp.rssKB == 0 {
		return smp, fmt.Errorf("no VmRSS in /proc/%d/status", s.g.PID())
	}
	if fi, err := os.Stat(filepath.Join(s.g.Dir, "portcullis.db")); err == nil {
		smp.dbKB = fi.Size() / 1024
	}
	// The count moves with the requests in flight at the moment (each has
	// a few goroutines of its own); the least of a few reads is the count
	// without them, which still includes every goroutine that leaked.
	for i := range soakGoroutineReads {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		n, err := s.goroutines()
		if err != nil {
			return smp, err
		}
		if i == 0 || n < smp.goroutines {
			smp.goroutines = n
		}
	}
	return smp, nil
}

// goroutines reads the total of Caddy's goroutine profile, served by its
// admin endpoint (not through s.do: the samples are not part of the load).
func (s *soak) goroutines() (int, error) {
	resp, err := s.hc.Get(s.g.AdminURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: status %d: %v", resp.StatusCode, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts %q", first)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return strconv.Atoi(v)
}

func (smp soakSample) row() string {
	var by []string
	for _, kind := range slices.Sorted(maps.Keys(smp.byKind)) {
		by = append(by, fmt.Sprintf("%s=%d", kind, smp.byKind[kind]))
	}
	return fmt.Sprintf("%6.0fs %7.1f %6.1f %6.1f %6.1f %10d %9d  %s", smp.at.Seconds(), mb(smp.rssKB), mb(smp.anonKB), mb(smp.fileKB),
		mb(int(smp.dbKB)), smp.goroutines, smp.requests, strings.Join(by, " "))
}

// soakHeader names the columns of soakSample.row.
var soakHeader = fmt.Sprintf("%7s %7s %6s %6s %6s %10s %9s  %s", "t", "RSS MB", "anon", "file", "db MB", "goroutines", "requests", "by kind")

func mb(kb int) float64 { return float64(kb) / 1024 }

// waitServing polls target until it answers with anything but 503 (the
// guard and the gateway answer 503 until they have discovered the
// provider), or fails after readyTimeout.
func waitServing(t *testing.T, target string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(readyTimeout)
	for {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer readiness-probe")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving within %s: %v", target, readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSoakMixedLoad proves that the server holds a steady mixed load
// without growing and without a server error: signed-in requests through
// oidc_login and fresh sign-ins through it, API calls through bearer_auth
// with JWT, opaque and junk tokens, client-credentials tokens, device codes
// polled while pending, and CIBA requests polled while pending then
// approved or denied by an operator, from 8 paced workers for
// PORTCULLIS_SOAK (default 60s; tests/soak.sh runs 10m). RSS and
// goroutines are sampled every 10s; the last sample may exceed the first
// one taken after the warm-up (20s, or a third of the run) by 10% at most
// (goroutines: or by soakGoroutineSlack). Every answer must be the
// expected one, and there must be no 5xx at all.
func TestSoakMixedLoad(t *testing.T) {
	duration := soakDefault
	if v := os.Getenv("PORTCULLIS_SOAK"); v != "" {
		var err error
		if duration, err = time.ParseDuration(v); err != nil || duration < 3*soakEvery {
			t.Fatalf("PORTCULLIS_SOAK=%q: want a Go duration of at least %s (%v)", v, 3*soakEvery, err)
		}
	}
	warmUp := max(soakMinWarmUp, duration/3)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Header.Get("X-Forwarded-User"))
	}))
	t.Cleanup(upstream.Close)
	guardPort := freePort(t)
	g := StartGatewayVars(t, soakCaddyfile, map[string]string{
		"AliceHash": cheapPasswordHash(t, alicePassword), "Upstream": upstream.Listener.Addr().String(), "GuardPort": strconv.Itoa(guardPort),
	})
	transport := &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute}
	t.Cleanup(transport.CloseIdleConnections)
	s := &soak{
		t: t, g: g, d: g.Discover(t), guardURL: "http://127.0.0.1:" + strconv.Itoa(guardPort), stats: newSoakStats(), done: make(chan struct{}),
		hc: &http.Client{Transport: transport, Timeout: requestTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	waitServing(t, s.guardURL+"/jwt/ready")
	waitServing(t, g.AppURL+"/ready")

	var browsers []*http.Client
	for range 2 {
		jar, _ := cookiejar.New(nil)
		b := &http.Client{Transport: transport, Jar: jar, Timeout: requestTimeout, CheckRedirect: s.hc.CheckRedirect}
		if err := s.signIn(b, g.AppURL+"/app/page"); err != nil {
			t.Fatalf("signing a browser in through the gateway: %v", err)
		}
		browsers = append(browsers, b)
	}

	began := time.Now()
	var wg sync.WaitGroup
	for _, b := range browsers {
		wg.Go(func() { s.gatewayWorker(b) })
	}
	wg.Go(s.loginWorker)
	wg.Go(s.guardWorker)
	wg.Go(s.guardWorker)
	wg.Go(s.tokenWorker)
	wg.Go(s.deviceWorker)
	wg.Go(s.cibaWorker)

	// Samples every soakEvery, and one at the end.
	var samples []soakSample
	t.Log(soakHeader)
	for at := soakEvery; ; at += soakEvery {
		at = min(at, duration)
		time.Sleep(time.Until(began.Add(at))) // the sampling moment
		smp, err := s.sample(at)
		if err != nil {
			close(s.done)
			wg.Wait()
			t.Fatalf("sampling at %s: %v", at, err)
		}
		samples = append(samples, smp)
		t.Log(smp.row())
		if at == duration {
			break
		}
	}
	close(s.done)
	wg.Wait()

	t.Logf("samples (run %s, warm-up %s):", duration, warmUp)
	t.Log(soakHeader)
	for _, smp := range samples {
		t.Log(smp.row())
	}
	s.stats.mu.Lock()
	for _, kind := range slices.Sorted(maps.Keys(s.stats.byKind)) {
		t.Logf("  %-22s %v", kind, s.stats.byKind[kind])
	}
	if s.stats.serverErrs > 0 {
		t.Errorf("%d answers were 5xx", s.stats.serverErrs)
	}
	if s.stats.failCount > 0 {
		t.Errorf("%d unexpected answers; the first ones:\n  %s", s.stats.failCount, strings.Join(s.stats.failures, "\n  "))
	}
	for _, kind := range []string{"gateway", "gateway sign-in", "guard jwt", "guard opaque", "guard junk token", "token cc jwt", "token cc opaque",
		"device authorization", "device poll", "ciba request", "ciba poll", "ciba admin", "ciba redeem"} {
		if len(s.stats.byKind[kind]) == 0 {
			t.Errorf("the load sent no %q request", kind)
		}
	}
	s.stats.mu.Unlock()

	var warm *soakSample
	for i := range samples {
		if samples[i].at >= warmUp {
			warm = &samples[i]
			break
		}
	}
	last := samples[len(samples)-1]
	if warm == nil || warm.at == last.at {
		t.Fatalf("no sample after the warm-up (%s) before the last one: %d samples", warmUp, len(samples))
	}
	if limit := float64(warm.rssKB) * soakGrowth; float64(last.rssKB) > limit {
		t.Errorf("RSS grew from %.1f MB at %s to %.1f MB at %s: more than %.0f%%",
			float64(warm.rssKB)/1024, warm.at, float64(last.rssKB)/1024, last.at, (soakGrowth-1)*100)
	}
	if limit := max(float64(warm.goroutines)*soakGrowth, float64(warm.goroutines+soakGoroutineSlack)); float64(last.goroutines) > limit {
		t.Errorf("goroutines grew from %d at %s to %d at %s: more than %.0f%% and more than %d",
			warm.goroutines, warm.at, last.goroutines, last.at, (soakGrowth-1)*100, soakGoroutineSlack)
	}
}
