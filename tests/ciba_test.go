package tests

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// cibaCaddyfile configures CIBA end to end: alice and bob, one client per
// delivery mode (poll, ping, push) whose notification endpoints are the
// test's receivers on 127.0.0.1 ({{.Vars.PingURL}}, {{.Vars.PushURL}}),
// a 1 s polling interval and the development switch for http receivers.
const cibaCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		signing_alg ES256
		insecure_cookies
		ciba {
			request_ttl 2m
			poll_interval 1s
			max_pending_per_user 3
			rate_limit_per_user 20 1m
			insecure_notification_endpoints
		}
		user alice {
			password alice-password
			email alice@example.com
			name "Alice Example"
		}
		user bob {
			password bob-password
		}
		client ciba-poll {
			name "Call Centre"
			secret poll-secret
			grant_types ciba refresh_token
		}
		client ciba-ping {
			name "Kiosk"
			secret ping-secret
			grant_types ciba
			backchannel_token_delivery_mode ping
			backchannel_client_notification_endpoint {{.Vars.PingURL}}
		}
		client ciba-push {
			name "Back Office"
			secret push-secret
			grant_types ciba refresh_token
			backchannel_token_delivery_mode push
			backchannel_client_notification_endpoint {{.Vars.PushURL}}
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
`

const cibaGrant = "urn:openid:params:grant-type:ciba"

// notification is one request a receiver got.
type notification struct {
	Authorization string
	Body          map[string]any
}

// receiver is a client notification endpoint on 127.0.0.1.
type receiver struct {
	srv *httptest.Server
	got chan notification
}

func newReceiver(t *testing.T, l net.Listener) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan notification, 16)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		json.Unmarshal(raw, &body)
		rc.got <- notification{Authorization: r.Header.Get("Authorization"), Body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	if l != nil {
		rc.srv.Listener.Close()
		rc.srv.Listener = l
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

// wait returns the next notification, failing after a deadline.
func (rc *receiver) wait(t *testing.T) notification {
	t.Helper()
	select {
	case n := <-rc.got:
		return n
	case <-time.After(20 * time.Second):
		t.Fatal("no notification arrived within 20s")
		return notification{}
	}
}

// cibaWorld is a gateway with its receivers.
type cibaWorld struct {
	g          *Gateway
	d          *Discovery
	ping, push *receiver
}

func startCIBA(t *testing.T) *cibaWorld {
	t.Helper()
	ping, push := newReceiver(t, nil), newReceiver(t, nil)
	g := StartGatewayVars(t, cibaCaddyfile, map[string]string{"PingURL": ping.srv.URL + "/ping", "PushURL": push.srv.URL + "/push"})
	return &cibaWorld{g: g, d: g.Discover(t), ping: ping, push: push}
}

// bcAuthorize starts a CIBA request as clientID and returns the response.
func (w *cibaWorld) bcAuthorize(t *testing.T, clientID, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	endpoint, _ := w.d.Raw["backchannel_authentication_endpoint"].(string)
	if endpoint != w.g.URL("/bc-authorize") {
		t.Fatalf("backchannel_authentication_endpoint = %q", endpoint)
	}
	resp, obj := PostForm(t, endpoint, form, clientID, secret)
	return resp.StatusCode, obj
}

func (w *cibaWorld) start(t *testing.T, clientID, secret string, form url.Values) string {
	t.Helper()
	status, obj := w.bcAuthorize(t, clientID, secret, form)
	id, _ := obj["auth_req_id"].(string)
	if status != http.StatusOK || id == "" || obj["expires_in"] == nil || (obj["interval"] == nil) != (clientID == "ciba-push") {
		t.Fatalf("bc-authorize: %d %v", status, obj)
	}
	return id
}

func (w *cibaWorld) poll(t *testing.T, clientID, secret, authReqID string) (int, map[string]any) {
	t.Helper()
	resp, obj := PostForm(t, w.d.TokenEndpoint, url.Values{"grant_type": {cibaGrant}, "auth_req_id": {authReqID}}, clientID, secret)
	return resp.StatusCode, obj
}

// pending returns the admin API's pending requests of user.
func (w *cibaWorld) pending(t *testing.T, user string) []map[string]any {
	t.Helper()
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, w.g.AdminURL+"/portcullis/ciba?user="+user, nil, nil)
	var list []map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /portcullis/ciba: %d %s", resp.StatusCode, body)
	}
	return list
}

// decideByAdmin approves or denies the only pending request of user.
func (w *cibaWorld) decideByAdmin(t *testing.T, user, action string) map[string]any {
	t.Helper()
	list := w.pending(t, user)
	if len(list) != 1 {
		t.Fatalf("%s has %d pending requests, want 1: %v", user, len(list), list)
	}
	status, obj := adminCall(t, w.g, http.MethodPost, "/portcullis/ciba/"+list[0]["id"].(string)+"/"+action, nil)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %v", action, status, obj)
	}
	return obj
}

// decideOnPage signs in on /ciba as username (when browser has no session)
// and submits decision on the first pending request, returning the text of
// the request list and of the final page.
func (w *cibaWorld) decideOnPage(t *testing.T, browser *http.Client, username, password, decision string) (list, final string) {
	t.Helper()
	page, _ := url.Parse(w.g.URL("/ciba"))
	resp, body := doRequest(t, browser, http.MethodGet, page.String(), nil, http.Header{"Accept": {"text/html"}})
	for range 2 {
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("approval page: %d %s", resp.StatusCode, pageText(body))
		}
		forms, err := ParseForms(page, body)
		if err != nil || len(forms) == 0 {
			t.Fatalf("approval page without forms: %s", pageText(body))
		}
		f := forms[0]
		switch {
		case f.HasField("password"):
			f.Fields.Set("username", username)
			f.Fields.Set("password", password)
		case f.HasField("ciba_request"):
			if _, ok := f.Button("decision", decision); !ok {
				t.Fatalf("no decision=%s button", decision)
			}
			f.Fields.Set("decision", decision)
			list = string(body)
		default:
			t.Fatalf("unexpected approval page: %s", pageText(body))
		}
		resp, body = doRequest(t, browser, http.MethodPost, f.Action.String(), strings.NewReader(f.Fields.Encode()), http.Header{
			"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"text/html"}, "Origin": {w.g.BaseURL},
		})
		if list != "" {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("decision: %d %s", resp.StatusCode, pageText(body))
			}
			return list, pageText(body)
		}
	}
	t.Fatal("the approval page showed no request")
	return "", ""
}

// pollUntil polls until the answer is neither authorization_pending nor
// slow_down, waiting the interval in between.
func (w *cibaWorld) pollUntil(t *testing.T, clientID, secret, authReqID string) (int, map[string]any) {
	t.Helper()
	interval := time.Second
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(interval) // the protocol's wait, not a race with the server
		status, obj := w.poll(t, clientID, secret, authReqID)
		switch obj["error"] {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second
		default:
			return status, obj
		}
	}
	t.Fatal("still pending after a minute")
	return 0, nil
}

func halfSHA256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// TestCIBAPollApprovedThroughAdminAPI: a poll client starts a request for
// alice, is told authorization_pending, an operator approves it through
// the admin API, the next poll gets tokens, and the auth_req_id cannot be
// used again.
func TestCIBAPollApprovedThroughAdminAPI(t *testing.T) {
	w := startCIBA(t)
	for _, k := range []string{"backchannel_token_delivery_modes_supported", "backchannel_user_code_parameter_supported",
		"backchannel_authentication_request_signing_alg_values_supported"} {
		if w.d.Raw[k] == nil {
			t.Errorf("discovery lacks %s", k)
		}
	}
	id := w.start(t, "ciba-poll", "poll-secret", url.Values{"scope": {"openid profile offline_access"}, "login_hint": {"alice"}, "binding_message": {"W4SCT"}})
	if status, obj := w.poll(t, "ciba-poll", "poll-secret", id); status != http.StatusBadRequest || obj["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", status, obj)
	}
	list := w.pending(t, "alice")
	if len(list) != 1 || list[0]["client_name"] != "Call Centre" || list[0]["binding_message"] != "W4SCT" || list[0]["status"] != "pending" || list[0]["id"] == id {
		t.Fatalf("pending list: %v", list)
	}
	if got := w.decideByAdmin(t, "alice", "approve"); got["status"] != "approved" {
		t.Fatalf("approve: %v", got)
	}
	if status, obj := adminCall(t, w.g, http.MethodPost, "/portcullis/ciba/"+list[0]["id"].(string)+"/deny", nil); status != http.StatusConflict {
		t.Errorf("second decision: %d %v, want 409", status, obj)
	}
	status, tok := w.pollUntil(t, "ciba-poll", "poll-secret", id)
	if status != http.StatusOK {
		t.Fatalf("poll after approval: %d %v", status, tok)
	}
	ts := tokenSetFrom(tok)
	idt, err := VerifyJWT(ts.IDToken, FetchJWKS(t, w.d.JWKSURI))
	if err != nil || idt.Claims["sub"] != "alice" || !audContains(idt.Claims["aud"], "ciba-poll") || ts.RefreshToken == "" {
		t.Fatalf("tokens: %v %v", err, tok)
	}
	if status, obj := w.poll(t, "ciba-poll", "poll-secret", id); status != http.StatusBadRequest || obj["error"] != "invalid_grant" {
		t.Errorf("replayed auth_req_id: %d %v, want invalid_grant", status, obj)
	}
	resp, obj := PostForm(t, w.d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.RefreshToken}}, "ciba-poll", "poll-secret")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("refresh after the replay: %d %v, want the grant revoked", resp.StatusCode, obj)
	}
}

// TestCIBAPingApprovedOnThePage: alice approves on the /ciba page (signing
// in through it), the ping client's receiver gets the auth_req_id with
// the client_notification_token, and the client redeems it.
func TestCIBAPingApprovedOnThePage(t *testing.T) {
	w := startCIBA(t)
	id := w.start(t, "ciba-ping", "ping-secret", url.Values{"scope": {"openid email"}, "login_hint": {"alice"},
		"binding_message": {`<script>alert(1)</script> & <b>7Q</b>`}, "client_notification_token": {"ping-token-123"}})
	list, final := w.decideOnPage(t, NewBrowser(t), "alice", "alice-password", "allow")
	if strings.Contains(list, "<script>alert(1)</script>") || !strings.Contains(list, "&lt;script&gt;alert(1)&lt;/script&gt;") ||
		!strings.Contains(list, `class="binding-message"`) || !strings.Contains(list, "Kiosk") {
		t.Errorf("the binding message is not shown inert, or the client is not named:\n%s", list)
	}
	if !strings.Contains(final, "Approved") {
		t.Errorf("final page: %s", final)
	}
	n := w.ping.wait(t)
	if n.Authorization != "Bearer ping-token-123" || n.Body["auth_req_id"] != id || len(n.Body) != 1 {
		t.Fatalf("ping: %+v", n)
	}
	status, tok := w.poll(t, "ciba-ping", "ping-secret", id)
	if status != http.StatusOK || tok["id_token"] == nil {
		t.Fatalf("redeem after ping: %d %v", status, tok)
	}
}

// TestCIBAPushDeliversTokens: the push client's receiver gets the token
// response with auth_req_id, and the ID token carries the auth_req_id,
// at_hash and rt_hash claims; a push client cannot poll.
func TestCIBAPushDeliversTokens(t *testing.T) {
	w := startCIBA(t)
	id := w.start(t, "ciba-push", "push-secret", url.Values{"scope": {"openid offline_access"}, "login_hint": {"alice"},
		"client_notification_token": {"push-token"}})
	if status, obj := w.poll(t, "ciba-push", "push-secret", id); status != http.StatusBadRequest || obj["error"] != "unauthorized_client" {
		t.Errorf("a push client polling: %d %v", status, obj)
	}
	w.decideByAdmin(t, "alice", "approve")
	n := w.push.wait(t)
	if n.Authorization != "Bearer push-token" || n.Body["auth_req_id"] != id {
		t.Fatalf("push: %+v", n)
	}
	at, _ := n.Body["access_token"].(string)
	rt, _ := n.Body["refresh_token"].(string)
	idt, err := VerifyJWT(fmt.Sprint(n.Body["id_token"]), FetchJWKS(t, w.d.JWKSURI))
	if err != nil || at == "" || rt == "" {
		t.Fatalf("pushed tokens: %v %v", err, n.Body)
	}
	if idt.Claims["urn:openid:params:jwt:claim:auth_req_id"] != id || idt.Claims["at_hash"] != halfSHA256(at) ||
		idt.Claims["urn:openid:params:jwt:claim:rt_hash"] != halfSHA256(rt) {
		t.Errorf("pushed ID token claims: %v", idt.Claims)
	}
}

// TestCIBADeniedAndExpired: a denial reaches the push receiver as
// access_denied and the poll client as access_denied; a request left
// undecided expires: the poll is told expired_token, the push receiver
// gets expired_token, and a late approval is refused.
func TestCIBADeniedAndExpired(t *testing.T) {
	w := startCIBA(t)
	id := w.start(t, "ciba-push", "push-secret", url.Values{"scope": {"openid"}, "login_hint": {"bob"}, "client_notification_token": {"t1"}})
	w.decideOnPage(t, NewBrowser(t), "bob", "bob-password", "deny")
	if n := w.push.wait(t); n.Body["error"] != "access_denied" || n.Body["auth_req_id"] != id || n.Body["access_token"] != nil {
		t.Fatalf("push after denial: %+v", n)
	}
	pollID := w.start(t, "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"bob"}})
	w.decideByAdmin(t, "bob", "deny")
	if status, obj := w.pollUntil(t, "ciba-poll", "poll-secret", pollID); status != http.StatusBadRequest || obj["error"] != "access_denied" {
		t.Fatalf("poll after denial: %d %v", status, obj)
	}

	short := w.start(t, "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "requested_expiry": {"2"}})
	pushShort := w.start(t, "ciba-push", "push-secret", url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "requested_expiry": {"2"}, "client_notification_token": {"t2"}})
	list := w.pending(t, "alice")
	if n := w.push.wait(t); n.Body["error"] != "expired_token" || n.Body["auth_req_id"] != pushShort {
		t.Fatalf("push after expiry: %+v", n)
	}
	if status, obj := w.poll(t, "ciba-poll", "poll-secret", short); status != http.StatusBadRequest || obj["error"] != "expired_token" {
		t.Errorf("poll after expiry: %d %v", status, obj)
	}
	for _, r := range list {
		if status, obj := adminCall(t, w.g, http.MethodPost, "/portcullis/ciba/"+r["id"].(string)+"/approve", nil); status != http.StatusNotFound {
			t.Errorf("approval after expiry: %d %v, want 404", status, obj)
		}
	}
}

// TestCIBARestartDeliversQueuedNotification: the push receiver is down
// when alice approves; the notification stays queued in the store across
// a restart and is delivered once the receiver is up.
func TestCIBARestartDeliversQueuedNotification(t *testing.T) {
	ping := newReceiver(t, nil)
	port := freePort(t)
	pushURL := fmt.Sprintf("http://127.0.0.1:%d/push", port)
	g := StartGatewayVars(t, cibaCaddyfile, map[string]string{"PingURL": ping.srv.URL, "PushURL": pushURL})
	w := &cibaWorld{g: g, d: g.Discover(t), ping: ping}
	id := w.start(t, "ciba-push", "push-secret", url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "client_notification_token": {"late"}})
	w.decideByAdmin(t, "alice", "approve")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(g.Logs(), "CIBA notification not delivered") {
		if time.Now().After(deadline) {
			t.Fatal("no failed delivery logged")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(g.Logs(), id) {
		t.Error("the auth_req_id was logged")
	}
	g.stop()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("listening on the receiver's port: %v", err)
	}
	w.push = newReceiver(t, l)
	g.Restart(t)
	n := w.push.wait(t)
	if n.Body["auth_req_id"] != id || n.Body["access_token"] == nil {
		t.Fatalf("delivery after restart: %+v", n)
	}
}

// TestCIBARefusals: the endpoint's refusals against the real binary.
func TestCIBARefusals(t *testing.T) {
	w := startCIBA(t)
	for _, tc := range []struct {
		name, client, secret string
		form                 url.Values
		status               int
		code                 string
	}{
		{"unknown user", "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"mallory"}}, 400, "unknown_user_id"},
		{"two hints", "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "id_token_hint": {"x.y.z"}}, 400, "invalid_request"},
		{"no openid scope", "ciba-poll", "poll-secret", url.Values{"scope": {"profile"}, "login_hint": {"alice"}}, 400, "invalid_request"},
		{"oversized binding message", "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {strings.Repeat("x", 200)}}, 400, "invalid_binding_message"},
		{"ping without notification token", "ciba-ping", "ping-secret", url.Values{"scope": {"openid"}, "login_hint": {"alice"}}, 400, "invalid_request"},
		{"wrong secret", "ciba-poll", "nope", url.Values{"scope": {"openid"}, "login_hint": {"alice"}}, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, obj := w.bcAuthorize(t, tc.client, tc.secret, tc.form)
			if status != tc.status || obj["error"] != tc.code {
				t.Errorf("%d %v, want %d %s", status, obj, tc.status, tc.code)
			}
		})
	}
	// Another client's auth_req_id is refused.
	id := w.start(t, "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"bob"}})
	if status, obj := w.poll(t, "ciba-ping", "ping-secret", id); status != http.StatusBadRequest || obj["error"] != "invalid_grant" {
		t.Errorf("another client's auth_req_id: %d %v", status, obj)
	}
	// The pending cap (3): bob has one; two more pass, the fourth is refused.
	for range 2 {
		w.start(t, "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"bob"}})
	}
	if status, obj := w.bcAuthorize(t, "ciba-poll", "poll-secret", url.Values{"scope": {"openid"}, "login_hint": {"bob"}}); status != http.StatusTooManyRequests || obj["error"] != "access_denied" {
		t.Errorf("over the pending cap: %d %v", status, obj)
	}
}

// TestCIBAPushClientRegisteredThroughAdminAPI: a push client added at run
// time through the admin API, with a loopback notification endpoint (the
// development switch is on), gets its tokens pushed after approval.
func TestCIBAPushClientRegisteredThroughAdminAPI(t *testing.T) {
	w := startCIBA(t)
	recv := newReceiver(t, nil)
	body, err := json.Marshal(map[string]any{
		"client_id": "late-push", "name": "Late Push", "secret": "late-push-secret", "grant_types": []string{"ciba"},
		"backchannel_token_delivery_mode":          "push",
		"backchannel_client_notification_endpoint": recv.srv.URL + "/cb",
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, created := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodPost, w.g.AdminURL+"/portcullis/clients",
		strings.NewReader(string(body)), http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("registering a push client: %d %s", resp.StatusCode, created)
	}
	status, started := w.bcAuthorize(t, "late-push", "late-push-secret", url.Values{"scope": {"openid"}, "login_hint": {"bob"},
		"client_notification_token": {"late-token"}})
	id, _ := started["auth_req_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("bc-authorize: %d %v", status, started)
	}
	w.decideByAdmin(t, "bob", "approve")
	n := recv.wait(t)
	if n.Authorization != "Bearer late-token" || n.Body["auth_req_id"] != id || n.Body["id_token"] == nil {
		t.Fatalf("push to the admin-registered client: %+v", n)
	}
}
