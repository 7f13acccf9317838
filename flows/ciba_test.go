package flows

// CIBA (OpenID CIBA Core 1.0): the backchannel authentication endpoint,
// the token grant, ping and push delivery, the approval page and the
// webhook, each security rule in a test of its own that tries the attack.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/store"
)

const (
	cibaPollID     = "ciba-poll"
	cibaPollSecret = "ciba-poll-secret"
	cibaPingID     = "ciba-ping"
	cibaPushID     = "ciba-push"
	cibaSignedID   = "ciba-signed"
	// cibaSignedSecret is a client_secret_jwt secret long enough for HS256.
	cibaSignedSecret = "ciba-signed-secret-0123456789-abcdefghij"
)

var (
	cibaPollBasic = clientCred{cibaPollID, cibaPollSecret, "basic"}
	cibaPingBasic = clientCred{cibaPingID, "ping-secret", "basic"}
	cibaPushBasic = clientCred{cibaPushID, "push-secret", "basic"}
)

// inbox is a notification endpoint on loopback that records what it gets.
type inbox struct {
	srv *httptest.Server
	got chan inboxCall
}

type inboxCall struct {
	auth, contentType string
	body              []byte
}

func newInbox(tb testing.TB) *inbox {
	in := &inbox{got: make(chan inboxCall, 16)}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		in.got <- inboxCall{r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(in.srv.Close)
	return in
}

func (in *inbox) wait(tb testing.TB) (inboxCall, map[string]any) {
	tb.Helper()
	select {
	case c := <-in.got:
		var m map[string]any
		json.Unmarshal(c.body, &m)
		return c, m
	case <-time.After(10 * time.Second):
		tb.Fatal("no notification within 10s")
		return inboxCall{}, nil
	}
}

func (in *inbox) none(tb testing.TB, within time.Duration) {
	tb.Helper()
	select {
	case c := <-in.got:
		tb.Fatalf("unexpected notification: %s", c.body)
	case <-time.After(within):
	}
}

// cibaEnv is a server with the CIBA clients, its inboxes and, when
// started, its background work.
type cibaEnv struct {
	*testEnv
	ping, push, webhook *inbox
}

func newCIBAServer(tb testing.TB, opts ...envOption) *cibaEnv {
	tb.Helper()
	ping, push, webhook := newInbox(tb), newInbox(tb), newInbox(tb)
	opts = append([]envOption{func(c *Config) {
		c.CIBA.InsecureNotificationEndpoints = true
		c.CIBA.WebhookURL = webhook.srv.URL + "/hook"
		c.CIBA.PollInterval = 2 * time.Second
	}}, opts...)
	env := newTestServer(tb, opts...)
	for _, c := range []*store.Client{
		{ID: cibaPollID, Name: "Call Centre", SecretDigest: DigestSecret(cibaPollSecret), TokenEndpointAuthMethod: AuthMethodSecretBasic,
			GrantTypes: []string{GrantCIBA, GrantRefreshToken}, LogoURI: "https://cdn.example.com/logo.png"},
		{ID: cibaPingID, Name: "Kiosk", SecretDigest: DigestSecret("ping-secret"), TokenEndpointAuthMethod: AuthMethodSecretBasic,
			GrantTypes: []string{GrantCIBA}, BackchannelTokenDeliveryMode: store.CIBAModePing,
			BackchannelClientNotificationEndpoint: ping.srv.URL + "/cb"},
		{ID: cibaPushID, Name: "Back Office", SecretDigest: DigestSecret("push-secret"), TokenEndpointAuthMethod: AuthMethodSecretBasic,
			GrantTypes: []string{GrantCIBA, GrantRefreshToken}, BackchannelTokenDeliveryMode: store.CIBAModePush,
			BackchannelClientNotificationEndpoint: push.srv.URL + "/cb"},
		{ID: cibaSignedID, Name: "Signed", TokenEndpointAuthMethod: AuthMethodSecretJWT, HMACSecret: cibaSignedSecret,
			SecretDigest: DigestSecret(cibaSignedSecret), GrantTypes: []string{GrantCIBA},
			BackchannelAuthenticationRequestSigningAlg: "HS256", BackchannelUserCodeParameter: true},
		{ID: "ciba-public", TokenEndpointAuthMethod: AuthMethodNone, GrantTypes: []string{GrantCIBA}},
	} {
		if err := env.store.PutClient(context.Background(), c); err != nil {
			tb.Fatal(err)
		}
	}
	return &cibaEnv{testEnv: env, ping: ping, push: push, webhook: webhook}
}

// run starts the background work (the notifier) until the test ends.
func (e *cibaEnv) run(tb testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.srv.Background(ctx, time.Hour) }()
	tb.Cleanup(func() { cancel(); <-done })
}

func (e *cibaEnv) bc(c clientCred, form url.Values) *response {
	e.tb.Helper()
	return e.backChannel(PathBackchannelAuthentication, c, form)
}

// start asks for a request and returns its auth_req_id.
func (e *cibaEnv) start(c clientCred, form url.Values) string {
	e.tb.Helper()
	res := e.bc(c, form)
	if res.Status != http.StatusOK {
		e.tb.Fatalf("bc-authorize: %d %s", res.Status, res.Body)
	}
	id, _ := res.JSON(e.tb)["auth_req_id"].(string)
	if len(id) < 22 {
		e.tb.Fatalf("auth_req_id %q", id)
	}
	return id
}

func (e *cibaEnv) poll(c clientCred, authReqID string) *response {
	e.tb.Helper()
	return e.token(c, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {authReqID}})
}

// only returns the single pending request of user.
func (e *cibaEnv) only(user string) *store.CIBARequest {
	e.tb.Helper()
	list, err := e.store.ListCIBARequests(context.Background(), user)
	if err != nil || len(list) != 1 {
		e.tb.Fatalf("%s has %d pending requests (%v)", user, len(list), err)
	}
	return list[0]
}

func (e *cibaEnv) approve(user string, ok bool) {
	e.tb.Helper()
	if _, err := e.srv.DecideCIBARequest(context.Background(), e.only(user).ID, ok); err != nil {
		e.tb.Fatal(err)
	}
}

func aliceHint(extra ...string) url.Values {
	v := url.Values{"scope": {"openid profile"}, "login_hint": {"alice"}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestCIBAPollIssuesTokensOnceAfterApproval(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint("scope", "openid offline_access", "binding_message", "W4SCT"))
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "authorization_pending")
	e.approve("alice", true)
	e.clock.Advance(3 * time.Second)
	tr := e.tokenOK(cibaPollBasic, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}})
	_, claims := e.verifyJWT(tr.IDToken)
	if claims["sub"] != "alice" || claims["aud"] != cibaPollID || claims[claimAuthReqID] != nil || tr.RefreshToken == "" {
		t.Fatalf("tokens %+v, ID token %v", tr, claims)
	}
	// Replay: refused, and what the first redemption issued is revoked.
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "invalid_grant")
	wantOAuthError(t, e.refresh(cibaPollBasic, tr.RefreshToken), 400, "invalid_grant")
}

func TestCIBAPollTooFastIsSlowDownAndRaisesTheInterval(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint())
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "authorization_pending")
	res := e.poll(cibaPollBasic, id)
	wantOAuthError(t, res, 400, "slow_down")
	if !strings.Contains(res.Body, "7 seconds") {
		t.Errorf("slow_down does not announce the raised interval (2s + 5s): %s", res.Body)
	}
	e.clock.Advance(3 * time.Second)
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "slow_down")
	e.clock.Advance(13 * time.Second)
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "authorization_pending")
}

func TestCIBAPendingPollsDoNotWrite(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint())
	before, _ := e.store.GetCIBARequest(context.Background(), digest(id))
	for range 3 {
		e.clock.Advance(10 * time.Second)
		wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "authorization_pending")
	}
	after, _ := e.store.GetCIBARequest(context.Background(), digest(id))
	if before.Interval != after.Interval || before.Status != after.Status {
		t.Errorf("polls changed the record: %+v -> %+v", before, after)
	}
}

func TestCIBAAnotherClientsAuthReqIDIsInvalidGrant(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint())
	e.approve("alice", true)
	wantOAuthError(t, e.poll(cibaPingBasic, id), 400, "invalid_grant")
	// The rightful client still gets its tokens.
	e.tokenOK(cibaPollBasic, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}})
}

func TestCIBAUnknownOrDisabledUserIsUnknownUserID(t *testing.T) {
	e := newCIBAServer(t)
	for _, hint := range []string{"mallory", "disabled", strings.Repeat("a", 300)} {
		wantOAuthError(t, e.bc(cibaPollBasic, url.Values{"scope": {"openid"}, "login_hint": {hint}}), 400, "unknown_user_id")
	}
}

func TestCIBAExactlyOneHintIsRequired(t *testing.T) {
	e := newCIBAServer(t)
	for name, form := range map[string]url.Values{
		"none":                            {"scope": {"openid"}},
		"login_hint and id_token_hint":    {"scope": {"openid"}, "login_hint": {"alice"}, "id_token_hint": {"a.b.c"}},
		"login_hint and login_hint_token": {"scope": {"openid"}, "login_hint": {"alice"}, "login_hint_token": {"a.b.c"}},
	} {
		t.Run(name, func(t *testing.T) { wantOAuthError(t, e.bc(cibaPollBasic, form), 400, "invalid_request") })
	}
}

func TestCIBAScopeMustContainOpenID(t *testing.T) {
	e := newCIBAServer(t)
	wantOAuthError(t, e.bc(cibaPollBasic, url.Values{"scope": {"profile"}, "login_hint": {"alice"}}), 400, "invalid_request")
}

func TestCIBAPublicClientsAreRefused(t *testing.T) {
	e := newCIBAServer(t)
	wantOAuthError(t, e.bc(clientCred{"ciba-public", "", "none"}, aliceHint()), 400, "unauthorized_client")
	wantOAuthError(t, e.bc(webappBasic, aliceHint()), 400, "unauthorized_client")
}

func TestCIBABindingMessageIsLimited(t *testing.T) {
	e := newCIBAServer(t)
	for name, msg := range map[string]string{
		"oversized":     strings.Repeat("x", maxBindingMessageRunes+1),
		"control":       "line\nbreak",
		"bidi override": "abc\u202edcba",
		"invalid utf8":  "\xff\xfe",
	} {
		t.Run(name, func(t *testing.T) {
			wantOAuthError(t, e.bc(cibaPollBasic, aliceHint("binding_message", msg)), 400, "invalid_binding_message")
		})
	}
	e.start(cibaPollBasic, aliceHint("binding_message", strings.Repeat("é", maxBindingMessageRunes)))
}

func TestCIBAPingAndPushNeedAValidNotificationToken(t *testing.T) {
	e := newCIBAServer(t)
	wantOAuthError(t, e.bc(cibaPingBasic, aliceHint()), 400, "invalid_request")
	wantOAuthError(t, e.bc(cibaPushBasic, aliceHint("client_notification_token", "has space")), 400, "invalid_request")
	wantOAuthError(t, e.bc(cibaPushBasic, aliceHint("client_notification_token", strings.Repeat("t", maxNotificationTokenLen+1))), 400, "invalid_request")
}

func TestCIBARequestedExpiryIsBounded(t *testing.T) {
	e := newCIBAServer(t)
	res := e.bc(cibaPollBasic, aliceHint("requested_expiry", "7200"))
	if got := res.JSON(t)["expires_in"]; got != float64(MaxCIBARequestTTL/time.Second) {
		t.Errorf("expires_in %v, want the 30m cap", got)
	}
	for _, bad := range []string{"0", "-5", "soon", "1.5"} {
		wantOAuthError(t, e.bc(cibaPollBasic, aliceHint("requested_expiry", bad)), 400, "invalid_request")
	}
}

// signedRequest signs claims as cibaSignedID's request object (HS256).
func signedRequest(tb testing.TB, e *cibaEnv, claims map[string]any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(cibaSignedSecret)}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	now := e.clock.Now()
	base := map[string]any{"iss": cibaSignedID, "aud": e.issuer, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Minute).Unix(), "jti": randomString(), "scope": "openid", "login_hint": "alice"}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	tok, err := jwt.Signed(signer).Claims(base).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// signedAssertion is cibaSignedID's client_secret_jwt authentication.
func signedAssertion(tb testing.TB, e *cibaEnv) url.Values {
	tb.Helper()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(cibaSignedSecret)}, nil)
	now := e.clock.Now()
	tok, err := jwt.Signed(signer).Claims(map[string]any{"iss": cibaSignedID, "sub": cibaSignedID, "aud": e.issuer,
		"exp": now.Add(time.Minute).Unix(), "jti": randomString()}).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {tok}}
}

func (e *cibaEnv) signedBC(tb testing.TB, form url.Values) *response {
	tb.Helper()
	for k, v := range signedAssertion(tb, e) {
		form[k] = v
	}
	return e.postForm(PathBackchannelAuthentication, form, nil)
}

func setUserCode(tb testing.TB, e *cibaEnv, user, code string) {
	tb.Helper()
	u, err := e.store.GetUser(context.Background(), user)
	if err != nil {
		tb.Fatal(err)
	}
	if u.BackchannelUserCodeHash, err = HashPassword(code); err != nil {
		tb.Fatal(err)
	}
	if err := e.store.PutUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
}

func TestCIBASignedRequestObjectIsRequiredAndUsedOnce(t *testing.T) {
	e := newCIBAServer(t)
	setUserCode(t, e, "alice", "4711")
	// Unsigned parameters from a client that must sign: refused.
	wantOAuthError(t, e.signedBC(t, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "user_code": {"4711"}}), 400, "invalid_request")
	req := signedRequest(t, e, map[string]any{"user_code": "4711", "requested_expiry": 60})
	res := e.signedBC(t, url.Values{"request": {req}})
	if res.Status != http.StatusOK || res.JSON(t)["expires_in"] != float64(60) {
		t.Fatalf("signed request: %d %s", res.Status, res.Body)
	}
	// The same request object again: its jti is spent.
	wantOAuthError(t, e.signedBC(t, url.Values{"request": {req}}), 400, "invalid_request")
	for name, claims := range map[string]map[string]any{
		"wrong audience": {"aud": "https://elsewhere.example"},
		"wrong issuer":   {"iss": "someone-else"},
		"expired":        {"exp": e.clock.Now().Add(-time.Hour).Unix()},
		"no jti":         {"jti": nil},
		"no nbf":         {"nbf": nil},
	} {
		t.Run(name, func(t *testing.T) {
			wantOAuthError(t, e.signedBC(t, url.Values{"request": {signedRequest(t, e, claims)}}), 400, "invalid_request")
		})
	}
	// Parameters beside the request object are refused.
	wantOAuthError(t, e.signedBC(t, url.Values{"request": {signedRequest(t, e, nil)}, "binding_message": {"outside"}}), 400, "invalid_request")
}

func TestCIBAUserCodeIsRequiredAndChecked(t *testing.T) {
	e := newCIBAServer(t)
	setUserCode(t, e, "alice", "4711")
	res := e.signedBC(t, url.Values{"request": {signedRequest(t, e, nil)}})
	wantOAuthError(t, res, 400, "missing_user_code")
	res = e.signedBC(t, url.Values{"request": {signedRequest(t, e, map[string]any{"user_code": "0000"})}})
	wantOAuthError(t, res, 400, "invalid_user_code")
	// bob has no code at all.
	res = e.signedBC(t, url.Values{"request": {signedRequest(t, e, map[string]any{"login_hint": "bob", "user_code": "4711"})}})
	wantOAuthError(t, res, 400, "invalid_user_code")
}

func TestCIBALoginHintTokenSignedByTheClient(t *testing.T) {
	e := newCIBAServer(t)
	setUserCode(t, e, "alice", "4711")
	hintToken := func(exp time.Time) string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(cibaSignedSecret)}, nil)
		tok, _ := jwt.Signed(signer).Claims(map[string]any{"iss": cibaSignedID, "aud": e.issuer, "exp": exp.Unix(),
			"sub_id": map[string]string{"format": "username", "username": "alice"}}).Serialize()
		return tok
	}
	ok := e.signedBC(t, url.Values{"request": {signedRequest(t, e, map[string]any{"login_hint": nil,
		"login_hint_token": hintToken(e.clock.Now().Add(time.Minute)), "user_code": "4711"})}})
	if ok.Status != http.StatusOK {
		t.Fatalf("login_hint_token: %d %s", ok.Status, ok.Body)
	}
	wantOAuthError(t, e.signedBC(t, url.Values{"request": {signedRequest(t, e, map[string]any{"login_hint": nil,
		"login_hint_token": hintToken(e.clock.Now().Add(-time.Hour)), "user_code": "4711"})}}), 400, "expired_login_hint_token")
}

func TestCIBAIDTokenHintIsCheckedButItsExpiryIgnored(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint())
	e.approve("alice", true)
	tr := e.tokenOK(cibaPollBasic, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}})
	e.clock.Advance(48 * time.Hour) // the ID token has long expired
	e.start(cibaPollBasic, url.Values{"scope": {"openid"}, "id_token_hint": {tr.IDToken}})
	// Issued to another client, or tampered with: refused.
	wantOAuthError(t, e.bc(cibaPingBasic, url.Values{"scope": {"openid"}, "id_token_hint": {tr.IDToken}, "client_notification_token": {"t"}}), 400, "invalid_request")
	wantOAuthError(t, e.bc(cibaPollBasic, url.Values{"scope": {"openid"}, "id_token_hint": {tr.IDToken + "x"}}), 400, "invalid_request")
}

func TestCIBADeniedRequestNeverYieldsTokens(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint())
	e.approve("alice", false)
	for range 2 {
		e.clock.Advance(3 * time.Second)
		wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "access_denied")
	}
	r, _ := e.store.GetCIBARequest(context.Background(), digest(id))
	if _, err := e.srv.DecideCIBARequest(context.Background(), r.ID, true); err == nil {
		t.Fatal("a denied request was approved afterwards")
	}
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "access_denied")
}

func TestCIBAApprovalAfterExpiryIsRefused(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint("requested_expiry", "60"))
	r, _ := e.store.GetCIBARequest(context.Background(), digest(id))
	e.clock.Advance(61 * time.Second)
	if _, err := e.srv.DecideCIBARequest(context.Background(), r.ID, true); err == nil {
		t.Fatal("an expired request was approved")
	}
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "expired_token")
}

func TestCIBAPendingRequestsPerUserAreCapped(t *testing.T) {
	e := newCIBAServer(t, func(c *Config) { c.CIBA.MaxPendingPerUser = 2 })
	e.start(cibaPollBasic, aliceHint())
	e.start(cibaPollBasic, aliceHint())
	res := e.bc(cibaPollBasic, aliceHint())
	wantOAuthError(t, res, http.StatusTooManyRequests, "access_denied")
	if res.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	e.start(cibaPollBasic, url.Values{"scope": {"openid"}, "login_hint": {"bob"}})
}

func TestCIBARateLimitsPerClientAndPerUser(t *testing.T) {
	e := newCIBAServer(t, func(c *Config) {
		c.CIBA.ClientRate = RateLimit{Burst: 3, Interval: time.Minute}
		c.CIBA.UserRate = RateLimit{Burst: 2, Interval: time.Minute}
		c.CIBA.MaxPendingPerUser = 100
	})
	e.start(cibaPollBasic, aliceHint())
	e.start(cibaPollBasic, aliceHint())
	// alice's bucket is empty: no push-bombing her, from any client.
	wantOAuthError(t, e.bc(cibaPollBasic, aliceHint()), http.StatusTooManyRequests, "access_denied")
	wantOAuthError(t, e.bc(cibaPingBasic, aliceHint("client_notification_token", "t")), http.StatusTooManyRequests, "access_denied")
	// The poll client has spent its 3 as well.
	wantOAuthError(t, e.bc(cibaPollBasic, url.Values{"scope": {"openid"}, "login_hint": {"bob"}}), http.StatusTooManyRequests, "access_denied")
	e.clock.Advance(time.Minute)
	e.start(cibaPollBasic, aliceHint())
}

// pageDecide signs b in on /ciba when needed and submits decision for the
// first request shown; it returns the list page and the answer.
func pageDecide(tb testing.TB, b *browser, user, password, decision string) (*response, *response) {
	tb.Helper()
	res := b.get(PathCIBA)
	if res.isLoginPage() {
		action, fields := res.form(tb)
		fields.Set("username", user)
		fields.Set("password", password)
		res = b.post(action, fields)
	}
	if !strings.Contains(res.Body, `name="ciba_request"`) {
		tb.Fatalf("no request on the page: %d %s", res.Status, res.Body)
	}
	action, fields := res.form(tb)
	fields.Set("decision", decision)
	return res, b.post(action, fields)
}

func TestCIBAPageShowsTheRequestAndTheBindingMessageInert(t *testing.T) {
	e := newCIBAServer(t)
	e.start(cibaPollBasic, aliceHint("binding_message", `<img src=x onerror=alert(1)> "7Q"`))
	b := e.newBrowser()
	if res := b.get(PathCIBA); !res.isLoginPage() {
		t.Fatalf("not signed in: %d %s", res.Status, res.Body)
	}
	list, done := pageDecide(t, b, "alice", alicePassword, "allow")
	if strings.Contains(list.Body, "<img src=x") || !strings.Contains(list.Body, `&lt;img src=x onerror=alert(1)&gt;`) {
		t.Errorf("the binding message is not escaped:\n%s", list.Body)
	}
	for _, want := range []string{"Call Centre", `class="binding-message"`, "https://cdn.example.com/logo.png", `scope-name">profile`} {
		if !strings.Contains(list.Body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if csp := list.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if done.Status != http.StatusOK || !strings.Contains(done.Body, "<h1>Approved</h1>") {
		t.Fatalf("decision: %d %s", done.Status, done.Body)
	}
	if res := b.get(PathCIBA); !strings.Contains(res.Body, "No pending requests") {
		t.Errorf("after the decision: %s", res.Body)
	}
}

func TestCIBABobCannotApproveAlicesRequest(t *testing.T) {
	e := newCIBAServer(t)
	id := e.start(cibaPollBasic, aliceHint())
	e.start(cibaPollBasic, url.Values{"scope": {"openid"}, "login_hint": {"bob"}, "binding_message": {"for bob"}})
	// bob's page shows his request only.
	bob := e.newBrowser()
	res := bob.get(PathCIBA)
	action, fields := res.form(t)
	fields.Set("username", "bob")
	fields.Set("password", bobPassword)
	if res = bob.post(action, fields); strings.Count(res.Body, `name="ciba_request"`) != 1 || !strings.Contains(res.Body, "for bob") {
		t.Fatalf("bob's page: %s", res.Body)
	}
	// alice's form, posted under bob's session: refused.
	alice := e.newBrowser()
	list := alice.get(PathCIBA)
	action, fields = list.form(t)
	fields.Set("username", "alice")
	fields.Set("password", alicePassword)
	list = alice.post(action, fields)
	action, fields = list.form(t)
	bobCSRF := bob.get(PathCIBA)
	_, bobFields := bobCSRF.form(t)
	fields.Set("csrf_token", bobFields.Get("csrf_token"))
	fields.Set("decision", "allow")
	if res := bob.post(action, fields); res.Status != http.StatusForbidden {
		t.Fatalf("bob posting alice's decision: %d %s", res.Status, res.Body)
	}
	// Nor can bob decide it at the store, by id.
	r, _ := e.store.GetCIBARequest(context.Background(), digest(id))
	if _, err := e.srv.decideCIBA(context.Background(), r.ID, store.CIBADecision{Approved: true, Subject: "bob", At: e.clock.Now()}); err == nil {
		t.Fatal("bob decided alice's request")
	}
	wantOAuthError(t, e.poll(cibaPollBasic, id), 400, "authorization_pending")
}

func TestCIBAPageDecisionNeedsCSRFToken(t *testing.T) {
	e := newCIBAServer(t)
	e.start(cibaPollBasic, aliceHint())
	b := e.newBrowser()
	list, _ := pageDecide(t, b, "alice", alicePassword, "deny")
	_ = list
	e.start(cibaPollBasic, aliceHint())
	page := b.get(PathCIBA)
	action, fields := page.form(t)
	fields.Del("csrf_token")
	fields.Set("decision", "allow")
	if res := b.post(action, fields); res.Status != http.StatusForbidden {
		t.Fatalf("decision without CSRF token: %d", res.Status)
	}
}

func TestCIBAPingGoesToTheRegisteredEndpointOnly(t *testing.T) {
	e := newCIBAServer(t)
	e.run(t)
	evil := newInbox(t)
	id := e.start(cibaPingBasic, aliceHint("client_notification_token", "ping-tok",
		"backchannel_client_notification_endpoint", evil.srv.URL, "client_notification_endpoint", evil.srv.URL))
	e.approve("alice", true)
	call, body := e.ping.wait(t)
	if call.auth != "Bearer ping-tok" || body["auth_req_id"] != id || len(body) != 1 || call.contentType != "application/json" {
		t.Fatalf("ping %+v %v", call, body)
	}
	evil.none(t, 200*time.Millisecond)
	e.tokenOK(cibaPingBasic, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}})
}

func TestCIBAPushCarriesTokensWithAuthReqIDAndHashes(t *testing.T) {
	e := newCIBAServer(t)
	e.run(t)
	id := e.start(cibaPushBasic, aliceHint("scope", "openid offline_access", "client_notification_token", "push-tok"))
	wantOAuthError(t, e.poll(cibaPushBasic, id), 400, "unauthorized_client")
	e.approve("alice", true)
	call, body := e.push.wait(t)
	if call.auth != "Bearer push-tok" || body["auth_req_id"] != id {
		t.Fatalf("push %+v", call)
	}
	at, rt := body["access_token"].(string), body["refresh_token"].(string)
	_, claims := e.verifyJWT(body["id_token"].(string))
	if claims[claimAuthReqID] != id || claims["at_hash"] != atHash(at) || claims[claimRTHash] != atHash(rt) {
		t.Fatalf("pushed ID token %v", claims)
	}
	// Issued once: the request is spent.
	r, _ := e.store.GetCIBARequest(context.Background(), digest(id))
	if r.Status != store.CIBAIssued {
		t.Errorf("status %s", r.Status)
	}
}

func TestCIBAPushOfADenialIsAccessDenied(t *testing.T) {
	e := newCIBAServer(t)
	e.run(t)
	id := e.start(cibaPushBasic, aliceHint("client_notification_token", "push-tok"))
	e.approve("alice", false)
	_, body := e.push.wait(t)
	if body["error"] != "access_denied" || body["auth_req_id"] != id || body["access_token"] != nil {
		t.Fatalf("push of a denial: %v", body)
	}
}

func TestCIBAWebhookIsSignedAndItsLinksDecideOnce(t *testing.T) {
	e := newCIBAServer(t)
	e.run(t)
	id := e.start(cibaPollBasic, aliceHint("binding_message", "W4SCT"))
	call, _ := e.webhook.wait(t)
	if call.contentType != "application/jwt" {
		t.Fatalf("webhook content type %q", call.contentType)
	}
	typ, claims := e.verifyJWT(string(call.body))
	if typ != CIBAWebhookJWTType || claims["sub"] != "alice" || claims["client_id"] != cibaPollID || claims["client_name"] != "Call Centre" ||
		claims["binding_message"] != "W4SCT" || claims["aud"] != e.webhook.srv.URL+"/hook" || claims["request_id"] == nil {
		t.Fatalf("webhook JWT %s %v", typ, claims)
	}
	if strings.Contains(string(call.body), id) {
		t.Error("the webhook carries the auth_req_id")
	}
	approve, _ := claims["approve_url"].(string)
	deny, _ := claims["deny_url"].(string)
	if res := e.serve(httptest.NewRequest(http.MethodGet, approve, nil)); res.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET of a decision link: %d", res.Status)
	}
	tampered := strings.Replace(approve, "token=", "token=x", 1)
	if res := e.serve(httptest.NewRequest(http.MethodPost, tampered, nil)); res.Status != http.StatusBadRequest {
		t.Errorf("tampered link: %d %s", res.Status, res.Body)
	}
	if res := e.serve(httptest.NewRequest(http.MethodPost, approve, nil)); res.Status != http.StatusOK {
		t.Fatalf("approve link: %d %s", res.Status, res.Body)
	}
	if res := e.serve(httptest.NewRequest(http.MethodPost, deny, nil)); res.Status != http.StatusConflict {
		t.Errorf("deny link after approval: %d %s", res.Status, res.Body)
	}
	e.clock.Advance(3 * time.Second)
	e.tokenOK(cibaPollBasic, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}})
}

func TestCIBANotificationsAreRetriedAndSurviveARestart(t *testing.T) {
	e := newCIBAServer(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer down.Close()
	c, _ := e.store.GetClient(context.Background(), cibaPushID)
	c.BackchannelClientNotificationEndpoint = down.URL
	e.store.PutClient(context.Background(), c)
	e.start(cibaPushBasic, aliceHint("client_notification_token", "push-tok"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.srv.Background(ctx, time.Hour) }()
	e.approve("alice", true)
	// Wait until the first attempt failed and was rescheduled.
	deadline := time.Now().Add(10 * time.Second)
	for {
		due, _ := e.store.ListDueCIBANotifications(context.Background(), e.clock.Now().Add(time.Hour), 10)
		if len(due) > 0 && due[0].Kind == store.CIBANotifyResult && due[0].Attempts == 1 && due[0].Payload != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rescheduled notification: %v", due)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// "Restart" with the receiver up: the queued payload is sent at once.
	c.BackchannelClientNotificationEndpoint = e.push.srv.URL
	e.store.PutClient(context.Background(), c)
	e.run(t)
	_, body := e.push.wait(t)
	if body["access_token"] == nil {
		t.Fatalf("delivered after restart: %v", body)
	}
}

func TestCIBADiscoveryAdvertisesTheEndpoint(t *testing.T) {
	e := newCIBAServer(t)
	m := e.get(PathDiscovery, nil, nil).JSON(t)
	if m["backchannel_authentication_endpoint"] != e.url(PathBackchannelAuthentication) || m["backchannel_user_code_parameter_supported"] != true {
		t.Fatalf("discovery %v", m)
	}
	modes, _ := json.Marshal(m["backchannel_token_delivery_modes_supported"])
	if string(modes) != `["poll","ping","push"]` {
		t.Errorf("modes %s", modes)
	}
}

func TestValidateCIBAClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    store.Client
		ok   bool
	}{
		{"poll", store.Client{GrantTypes: []string{GrantCIBA}, TokenEndpointAuthMethod: AuthMethodSecretBasic}, true},
		{"ping without endpoint", store.Client{GrantTypes: []string{GrantCIBA}, BackchannelTokenDeliveryMode: "ping"}, false},
		{"push over plain http elsewhere", store.Client{GrantTypes: []string{GrantCIBA}, BackchannelTokenDeliveryMode: "push",
			BackchannelClientNotificationEndpoint: "http://example.com/cb"}, false},
		{"poll with an endpoint", store.Client{GrantTypes: []string{GrantCIBA}, BackchannelClientNotificationEndpoint: "https://example.com/cb"}, false},
		{"public", store.Client{GrantTypes: []string{GrantCIBA}, TokenEndpointAuthMethod: AuthMethodNone}, false},
		{"settings without the grant", store.Client{BackchannelTokenDeliveryMode: "poll"}, false},
		{"HS256 without a client_secret_jwt secret", store.Client{GrantTypes: []string{GrantCIBA}, BackchannelAuthenticationRequestSigningAlg: "HS256"}, false},
		{"unknown mode", store.Client{GrantTypes: []string{GrantCIBA}, BackchannelTokenDeliveryMode: "carrier-pigeon"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateCIBAClient(&tc.c, false); (err == nil) != tc.ok {
				t.Errorf("ValidateCIBAClient: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
