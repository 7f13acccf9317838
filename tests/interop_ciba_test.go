package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// peerCIBACaddyfile is the configuration of the CIBA tests against certified
// peers (openid-client, chromium) and of the ping and push delivery tests:
// alice and bob, an API, and one client per delivery mode and
// authentication method. {{.Vars.JWKSFile}} is the private_key_jwt
// client's public JWK Set; {{.Vars.NotifyURL}} is the test's notification
// receiver on 127.0.0.1 (plain HTTP, allowed by
// insecure_notification_endpoints). The 1 s polling interval keeps the
// tests short.
const peerCIBACaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		signing_alg ES256
		insecure_cookies
		ciba {
			request_ttl 5m
			poll_interval 1s
			insecure_notification_endpoints
		}
		user alice {
			password alice-password
			email alice@example.com
			name "Alice Example"
			groups admins
		}
		user bob {
			password bob-password
			email bob@example.com
			name "Bob Example"
		}
		client kiosk {
			name "Checkout Kiosk"
			secret kiosk-secret
			grant_types ciba refresh_token
			backchannel_token_delivery_mode poll
		}
		client callcentre {
			name "Call Centre"
			token_endpoint_auth_method private_key_jwt
			token_endpoint_auth_signing_alg ES256
			jwks_file {{.Vars.JWKSFile}}
			grant_types ciba
			backchannel_token_delivery_mode poll
		}
		client pinger {
			name "Ping Terminal"
			secret pinger-secret
			grant_types ciba
			backchannel_token_delivery_mode ping
			backchannel_client_notification_endpoint {{.Vars.NotifyURL}}/ping
		}
		client pusher {
			name "Push Terminal"
			secret pusher-secret
			grant_types ciba refresh_token
			backchannel_token_delivery_mode push
			backchannel_client_notification_endpoint {{.Vars.NotifyURL}}/push
		}
		api https://api.example.com {
			name "Demo API"
			scopes read:items write:items
			token_format jwt
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
`

// Clients and users of peerCIBACaddyfile.
const (
	peerKioskID       = "kiosk"
	peerKioskSecret   = "kiosk-secret"
	peerKioskName     = "Checkout Kiosk"
	peerCallCentreID  = "callcentre"
	peerCallCentreKID = "callcentre-1"
	peerPingerID      = "pinger"
	peerPingerSecret  = "pinger-secret"
	peerPusherID      = "pusher"
	peerPusherSecret  = "pusher-secret"
	bobUsername       = "bob"
	bobPassword       = "bob-password"
	peerCIBAGrant     = "urn:openid:params:grant-type:ciba"
	// peerNotifyTimeout bounds the wait for a ping or push notification.
	peerNotifyTimeout = 10 * time.Second
)

// peerNotification is one request the notification receiver got.
type peerNotification struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// peerReceiver is a client's notification endpoint (CIBA §10.2, §10.3): an
// httptest server on 127.0.0.1 that records every request and answers
// 204 No Content.
type peerReceiver struct {
	srv *httptest.Server
	got chan peerNotification
}

func newPeerReceiver(t *testing.T) *peerReceiver {
	t.Helper()
	r := &peerReceiver{got: make(chan peerNotification, 64)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		select {
		case r.got <- peerNotification{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body}:
		default:
			t.Errorf("notification receiver: more than %d notifications unread", cap(r.got))
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// next waits up to peerNotifyTimeout for the next notification.
func (r *peerReceiver) next(t *testing.T, what string) peerNotification {
	t.Helper()
	select {
	case n := <-r.got:
		return n
	case <-time.After(peerNotifyTimeout):
		t.Fatalf("no %s notification within %s", what, peerNotifyTimeout)
		return peerNotification{}
	}
}

// none fails the test if a notification arrived.
func (r *peerReceiver) none(t *testing.T, what string) {
	t.Helper()
	select {
	case n := <-r.got:
		t.Fatalf("%s: unexpected notification %s %s: %s", what, n.Method, n.Path, n.Body)
	default:
	}
}

// peerCIBAGateway is a running gateway of peerCIBACaddyfile with the key of
// the private_key_jwt client and the notification receiver.
type peerCIBAGateway struct {
	*Gateway
	key      *ecdsa.PrivateKey
	receiver *peerReceiver
}

// startPeerCIBAGateway writes a fresh key's public JWK Set, starts the
// notification receiver and the gateway.
func startPeerCIBAGateway(t *testing.T) *peerCIBAGateway {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: peerCallCentreKID, Use: "sig", Algorithm: "ES256"}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "callcentre.jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	rcv := newPeerReceiver(t)
	g := StartGatewayVars(t, peerCIBACaddyfile, map[string]string{"JWKSFile": jwksFile, "NotifyURL": rcv.srv.URL})
	return &peerCIBAGateway{Gateway: g, key: key, receiver: rcv}
}

// peerCIBAEndpoint checks the CIBA members of the discovery document and
// returns the backchannel authentication endpoint.
func peerCIBAEndpoint(t *testing.T, d *Discovery) string {
	t.Helper()
	endpoint, _ := d.Raw["backchannel_authentication_endpoint"].(string)
	if endpoint != d.Issuer+"/bc-authorize" {
		t.Fatalf("discovery backchannel_authentication_endpoint = %q, want %s/bc-authorize", endpoint, d.Issuer)
	}
	modes, _ := d.Raw["backchannel_token_delivery_modes_supported"].([]any)
	for _, m := range []string{"poll", "ping", "push"} {
		if !slices.Contains(modes, any(m)) {
			t.Errorf("discovery backchannel_token_delivery_modes_supported = %v, lacks %s", d.Raw["backchannel_token_delivery_modes_supported"], m)
		}
	}
	if d.Raw["backchannel_user_code_parameter_supported"] != true {
		t.Errorf("discovery backchannel_user_code_parameter_supported = %v, want true", d.Raw["backchannel_user_code_parameter_supported"])
	}
	if grants, _ := d.Raw["grant_types_supported"].([]any); !slices.Contains(grants, any(peerCIBAGrant)) {
		t.Errorf("discovery grant_types_supported = %v, lacks %s", d.Raw["grant_types_supported"], peerCIBAGrant)
	}
	return endpoint
}

// peerCIBAInitiate sends a backchannel authentication request for
// login_hint as clientID/secret (client_secret_basic) and returns the
// acknowledgement (CIBA §7.3), checked.
func peerCIBAInitiate(t *testing.T, endpoint string, form url.Values, clientID, secret string) (authReqID string, ack map[string]any) {
	t.Helper()
	resp, obj := PostForm(t, endpoint, form, clientID, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /bc-authorize as %s: status %d: %v", clientID, resp.StatusCode, obj)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("backchannel authentication response Cache-Control = %q, want no-store", cc)
	}
	authReqID, _ = obj["auth_req_id"].(string)
	if exp, _ := obj["expires_in"].(float64); authReqID == "" || exp <= 0 {
		t.Fatalf("backchannel authentication response lacks auth_req_id or expires_in: %v", obj)
	}
	return authReqID, obj
}

// peerCIBARequest is one pending request as the admin API lists it.
type peerCIBARequest struct {
	ID             string   `json:"id"`
	ClientID       string   `json:"client_id"`
	ClientName     string   `json:"client_name"`
	User           string   `json:"user"`
	Scopes         []string `json:"scopes"`
	BindingMessage string   `json:"binding_message"`
	Status         string   `json:"status"`
	ExpiresAt      any      `json:"expires_at"`
}

// peerAdmin sends a request to Caddy's admin API and returns the status
// and body.
func peerAdmin(t *testing.T, g *Gateway, method, path string) (int, []byte) {
	t.Helper()
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, method, g.AdminURL+path, nil, http.Header{"Content-Type": {"application/json"}})
	return resp.StatusCode, body
}

// peerCIBAPending lists the pending CIBA requests of user and returns the
// one with bindingMessage.
func peerCIBAPending(t *testing.T, g *Gateway, user, bindingMessage string) peerCIBARequest {
	t.Helper()
	status, body := peerAdmin(t, g, http.MethodGet, "/portcullis/ciba?user="+url.QueryEscape(user))
	if status != http.StatusOK {
		t.Fatalf("GET /portcullis/ciba?user=%s: status %d: %s", user, status, body)
	}
	var list []peerCIBARequest
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET /portcullis/ciba: %v: %s", err, body)
	}
	for _, r := range list {
		if r.BindingMessage == bindingMessage {
			if r.User != user || r.Status != "pending" || r.ID == "" {
				t.Fatalf("admin API lists %+v, want user %s, status pending and an id", r, user)
			}
			return r
		}
	}
	t.Fatalf("admin API does not list a pending request of %s with binding message %q: %s", user, bindingMessage, body)
	return peerCIBARequest{}
}

// peerCIBADecide approves or denies (decision) a request through the admin
// API and returns the request as the answer shows it.
func peerCIBADecide(t *testing.T, g *Gateway, id, decision string) peerCIBARequest {
	t.Helper()
	status, body := peerAdmin(t, g, http.MethodPost, "/portcullis/ciba/"+url.PathEscape(id)+"/"+decision)
	if status != http.StatusOK {
		t.Fatalf("POST /portcullis/ciba/%s/%s: status %d: %s", id, decision, status, body)
	}
	var r peerCIBARequest
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("POST /portcullis/ciba/%s/%s: %v: %s", id, decision, err, body)
	}
	want := map[string]string{"approve": "approved", "deny": "denied"}[decision]
	if r.Status != want {
		t.Fatalf("POST /portcullis/ciba/%s/%s answered status %q, want %q", id, decision, r.Status, want)
	}
	return r
}

// peerCIBARedeem sends the CIBA grant for authReqID as clientID/secret.
func peerCIBARedeem(t *testing.T, d *Discovery, authReqID, clientID, secret string) (int, map[string]any) {
	t.Helper()
	resp, obj := PostForm(t, d.TokenEndpoint, url.Values{"grant_type": {peerCIBAGrant}, "auth_req_id": {authReqID}}, clientID, secret)
	return resp.StatusCode, obj
}

// peerHalfHash is at_hash / rt_hash of token for an ES256-signed ID
// token: the left half of its SHA-256, base64url (OIDC Core §3.1.3.6).
func peerHalfHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// peerCheckIDToken verifies a CIBA ID token's signature and its standard
// claims for clientID and alice.
func peerCheckIDToken(t *testing.T, raw string, set *JWKS, issuer, clientID string) map[string]any {
	t.Helper()
	tok, err := VerifyJWT(raw, set)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	c := tok.Claims
	now := float64(time.Now().Unix())
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	if tok.Header["alg"] != "ES256" || c["iss"] != issuer || !audContains(c["aud"], clientID) || c["sub"] != aliceUsername ||
		exp <= now || iat <= 0 || iat > now+60 {
		t.Fatalf("ID token: header %v claims %v, want ES256, iss %s, aud %s, sub %s, exp ahead, iat now", tok.Header, c, issuer, clientID, aliceUsername)
	}
	return c
}

// TestOpenIDClientCIBAInterop runs tests/interop/ciba.mjs: the openid-client
// library (npm, v6) starts CIBA requests (initiateBackchannelAuthentication)
// and polls for them with its own loop (pollBackchannelAuthenticationGrant)
// as a client_secret_basic client and as a private_key_jwt client, while the
// script approves through the admin API and through the /ciba page as
// alice; it checks the ID token claims, sees a spent auth_req_id refused,
// a denied request rejected with access_denied, an unknown user with
// unknown_user_id, and bob's request kept off alice's page.
//
// Without node on PATH the test is skipped, except under CI=true where that
// is a failure.
func TestOpenIDClientCIBAInterop(t *testing.T) {
	node := requireNode(t)
	dir, err := filepath.Abs(interopDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)

	g := startPeerCIBAGateway(t)
	peerCIBAEndpoint(t, g.Discover(t))
	private, err := json.Marshal(jose.JSONWebKey{Key: g.key, KeyID: peerCallCentreKID, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	runNodeScript(t, node, dir, "ciba.mjs",
		"ISSUER="+g.BaseURL,
		"ADMIN_URL="+g.AdminURL,
		"USERNAME="+aliceUsername,
		"PASSWORD="+alicePassword,
		"EXPECTED_EMAIL="+aliceEmail,
		"OTHER_USERNAME="+bobUsername,
		"BASIC_CLIENT_ID="+peerKioskID,
		"BASIC_CLIENT_SECRET="+peerKioskSecret,
		"BASIC_CLIENT_NAME="+peerKioskName,
		"JWT_CLIENT_ID="+peerCallCentreID,
		"JWT_PRIVATE_JWK="+string(private),
	)
	g.receiver.none(t, "poll mode")
}

// TestCIBAPingNotifiesThenTheClientRedeems: a ping client starts a request
// with a client_notification_token; once alice is approved through the admin
// API, the client's endpoint gets the ping (CIBA §10.2: POST, JSON
// {"auth_req_id"}, Bearer the client's token), and then the token endpoint
// redeems the auth_req_id once. A ping request without
// client_notification_token is refused (§7.1: REQUIRED for ping and push).
func TestCIBAPingNotifiesThenTheClientRedeems(t *testing.T) {
	g := startPeerCIBAGateway(t)
	d := g.Discover(t)
	endpoint := peerCIBAEndpoint(t, d)

	resp, obj := PostForm(t, endpoint, url.Values{"scope": {"openid"}, "login_hint": {aliceUsername}}, peerPingerID, peerPingerSecret)
	if resp.StatusCode != http.StatusBadRequest || obj["error"] != "invalid_request" {
		t.Errorf("ping request without client_notification_token: %d %v, want 400 invalid_request", resp.StatusCode, obj)
	}

	token := RandomString(t)
	msg := "Ping " + RandomString(t)[:6]
	authReqID, _ := peerCIBAInitiate(t, endpoint, url.Values{
		"scope": {"openid email"}, "login_hint": {aliceUsername}, "binding_message": {msg}, "client_notification_token": {token},
	}, peerPingerID, peerPingerSecret)
	g.receiver.none(t, "before approval")
	req := peerCIBAPending(t, g.Gateway, aliceUsername, msg)
	if req.ClientID != peerPingerID || req.ClientName != "Ping Terminal" || !slices.Contains(req.Scopes, "email") {
		t.Errorf("admin API lists %+v, want client pinger, its name and the email scope", req)
	}
	peerCIBADecide(t, g.Gateway, req.ID, "approve")

	n := g.receiver.next(t, "ping")
	if n.Method != http.MethodPost || n.Path != "/ping" || n.Header.Get("Authorization") != "Bearer "+token ||
		!strings.HasPrefix(n.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("ping: %s %s, Authorization %q, Content-Type %q; want POST /ping, Bearer %s, application/json",
			n.Method, n.Path, n.Header.Get("Authorization"), n.Header.Get("Content-Type"), token)
	}
	var ping map[string]any
	if err := json.Unmarshal(n.Body, &ping); err != nil || ping["auth_req_id"] != authReqID || len(ping) != 1 {
		t.Fatalf("ping body %s (%v), want exactly {\"auth_req_id\": %q}", n.Body, err, authReqID)
	}

	status, tok := peerCIBARedeem(t, d, authReqID, peerPingerID, peerPingerSecret)
	if status != http.StatusOK {
		t.Fatalf("redeeming after the ping: %d %v", status, tok)
	}
	ts := tokenSetFrom(tok)
	c := peerCheckIDToken(t, ts.IDToken, FetchJWKS(t, d.JWKSURI), d.Issuer, peerPingerID)
	if c["at_hash"] != peerHalfHash(ts.AccessToken) || c["email"] != aliceEmail {
		t.Errorf("ID token at_hash %v (want %s), email %v", c["at_hash"], peerHalfHash(ts.AccessToken), c["email"])
	}
	if status, obj := peerCIBARedeem(t, d, authReqID, peerPingerID, peerPingerSecret); status != http.StatusBadRequest || obj["error"] != "invalid_grant" {
		t.Errorf("redeeming the auth_req_id again: %d %v, want 400 invalid_grant", status, obj)
	}
	g.receiver.none(t, "after redeeming")
}

// TestCIBAPushDeliversTokensToTheClient: a push client starts a request;
// once alice is approved through the admin API, its endpoint gets the token
// response itself (CIBA §10.3.1): Bearer the client_notification_token, the
// auth_req_id, and an ID token that verifies against the JWKS and carries
// urn:openid:params:jwt:claim:auth_req_id, at_hash and
// urn:openid:params:jwt:claim:rt_hash. The push client may not redeem at the
// token endpoint (§11: unauthorized_client). A denied request is pushed as
// access_denied (§12).
func TestCIBAPushDeliversTokensToTheClient(t *testing.T) {
	g := startPeerCIBAGateway(t)
	d := g.Discover(t)
	endpoint := peerCIBAEndpoint(t, d)
	jwks := FetchJWKS(t, d.JWKSURI)

	t.Run("approved", func(t *testing.T) {
		token := RandomString(t)
		msg := "Push " + RandomString(t)[:6]
		authReqID, ack := peerCIBAInitiate(t, endpoint, url.Values{
			"scope": {"openid profile offline_access"}, "login_hint": {aliceUsername}, "binding_message": {msg}, "client_notification_token": {token},
		}, peerPusherID, peerPusherSecret)
		if _, ok := ack["interval"]; ok {
			t.Errorf("push acknowledgement has an interval (CIBA §7.3: only for poll and ping): %v", ack)
		}
		if status, obj := peerCIBARedeem(t, d, authReqID, peerPusherID, peerPusherSecret); status != http.StatusBadRequest || obj["error"] != "unauthorized_client" {
			t.Errorf("a push client polling the token endpoint: %d %v, want 400 unauthorized_client (CIBA §11)", status, obj)
		}
		req := peerCIBAPending(t, g.Gateway, aliceUsername, msg)
		peerCIBADecide(t, g.Gateway, req.ID, "approve")

		n := g.receiver.next(t, "push")
		if n.Method != http.MethodPost || n.Path != "/push" || n.Header.Get("Authorization") != "Bearer "+token ||
			!strings.HasPrefix(n.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("push: %s %s, Authorization %q, Content-Type %q; want POST /push, Bearer %s, application/json",
				n.Method, n.Path, n.Header.Get("Authorization"), n.Header.Get("Content-Type"), token)
		}
		var body map[string]any
		if err := json.Unmarshal(n.Body, &body); err != nil {
			t.Fatalf("push body: %v: %s", err, n.Body)
		}
		ts := tokenSetFrom(body)
		if body["auth_req_id"] != authReqID || ts.AccessToken == "" || !strings.EqualFold(ts.TokenType, "Bearer") || ts.ExpiresIn <= 0 ||
			ts.RefreshToken == "" || ts.IDToken == "" {
			t.Fatalf("pushed token response %s: want auth_req_id %s, a Bearer access token with expires_in, a refresh token (offline_access) and an ID token",
				n.Body, authReqID)
		}
		c := peerCheckIDToken(t, ts.IDToken, jwks, d.Issuer, peerPusherID)
		for claim, want := range map[string]string{
			"urn:openid:params:jwt:claim:auth_req_id": authReqID,
			"at_hash":                             peerHalfHash(ts.AccessToken),
			"urn:openid:params:jwt:claim:rt_hash": peerHalfHash(ts.RefreshToken),
			"name":                                aliceName,
		} {
			if c[claim] != want {
				t.Errorf("pushed ID token %s = %v, want %q", claim, c[claim], want)
			}
		}
		at, err := VerifyJWT(ts.AccessToken, jwks)
		if err != nil {
			t.Fatalf("pushed access token: %v", err)
		}
		if at.Claims["sub"] != aliceUsername || at.Claims["client_id"] != peerPusherID {
			t.Errorf("pushed access token claims %v", at.Claims)
		}
		refreshed := TokenRequest(t, d, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.RefreshToken}}, peerPusherID, peerPusherSecret)
		if refreshed.RefreshToken == ts.RefreshToken {
			t.Errorf("refresh token not rotated")
		}
		if status, _ := peerAdmin(t, g.Gateway, http.MethodPost, "/portcullis/ciba/"+url.PathEscape(req.ID)+"/deny"); status != http.StatusConflict {
			t.Errorf("denying an approved request: status %d, want 409", status)
		}
		g.receiver.none(t, "after the push")
	})

	t.Run("denied", func(t *testing.T) {
		token := RandomString(t)
		msg := "Push deny " + RandomString(t)[:6]
		authReqID, _ := peerCIBAInitiate(t, endpoint, url.Values{
			"scope": {"openid"}, "login_hint": {aliceUsername}, "binding_message": {msg}, "client_notification_token": {token},
		}, peerPusherID, peerPusherSecret)
		peerCIBADecide(t, g.Gateway, peerCIBAPending(t, g.Gateway, aliceUsername, msg).ID, "deny")
		n := g.receiver.next(t, "push error")
		var body map[string]any
		if err := json.Unmarshal(n.Body, &body); err != nil {
			t.Fatalf("push error body: %v: %s", err, n.Body)
		}
		if n.Path != "/push" || n.Header.Get("Authorization") != "Bearer "+token || body["error"] != "access_denied" || body["auth_req_id"] != authReqID || body["access_token"] != nil {
			t.Fatalf("push after denial: %s Authorization %q: %s; want Bearer %s and {error: access_denied, auth_req_id: %s}",
				n.Path, n.Header.Get("Authorization"), n.Body, token, authReqID)
		}
	})
}
