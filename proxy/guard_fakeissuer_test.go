package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/proxy"
)

// This file is the API guard's test harness: a fake authorization server
// (discovery, JWKS, RFC 7662 introspection) that signs with go-jose, and an
// API behind a Guard in front of the recording upstream of fakeop_test.go.

const (
	apiHost       = "api.example"
	apiOrigin     = "https://" + apiHost
	apiAudience   = "https://api.example.com"
	guardClientID = "api-guard"
	guardSecret   = "api-guard-secret"
)

// fakeIssuer is an authorization server on loopback.
type fakeIssuer struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string
	clock  *fakeClock

	// Down makes discovery, the JWKS and introspection answer 503.
	Down atomic.Bool
	// IntrospectFail makes introspection answer 500.
	IntrospectFail atomic.Bool

	mu        sync.Mutex
	key       *signingKey
	published []jose.JSONWebKey
	// meta overrides discovery fields; a nil value removes the field.
	meta map[string]any
	// noOIDC answers 404 at the OpenID discovery path (RFC 8414 only).
	noOIDC bool
	// opaque maps opaque tokens to their introspection answer (without
	// active: the issuer decides it from revoked and exp).
	opaque  map[string]map[string]any
	revoked map[string]bool
	// gate, when set, holds every introspection until it is closed;
	// entered receives one value per held call.
	gate    chan struct{}
	entered chan struct{}

	discoveryHits, jwksHits, introspections atomic.Int64
}

func newFakeIssuer(t testing.TB, clock *fakeClock) *fakeIssuer {
	fi := &fakeIssuer{
		t: t, clock: clock, key: newECKey(t, "k1"), meta: map[string]any{},
		opaque: map[string]map[string]any{}, revoked: map[string]bool{},
	}
	fi.published = []jose.JSONWebKey{fi.key.public()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fi.mu.Lock()
		noOIDC := fi.noOIDC
		fi.mu.Unlock()
		if noOIDC {
			http.NotFound(w, r)
			return
		}
		fi.discovery(w, r)
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", fi.discovery)
	mux.HandleFunc("GET /jwks", fi.jwks)
	mux.HandleFunc("POST /introspect", fi.introspect)
	fi.srv = httptest.NewServer(mux)
	fi.issuer = fi.srv.URL
	t.Cleanup(fi.srv.Close)
	return fi
}

func (fi *fakeIssuer) set(f func(fi *fakeIssuer)) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f(fi)
}

func (fi *fakeIssuer) discovery(w http.ResponseWriter, r *http.Request) {
	fi.discoveryHits.Add(1)
	if fi.Down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                                fi.issuer,
		"authorization_endpoint":                fi.issuer + "/authorize",
		"token_endpoint":                        fi.issuer + "/token",
		"jwks_uri":                              fi.issuer + "/jwks",
		"introspection_endpoint":                fi.issuer + "/introspect",
		"id_token_signing_alg_values_supported": []string{"ES256", "RS256"},
	}
	fi.mu.Lock()
	overrideMeta(doc, fi.meta)
	fi.mu.Unlock()
	writeJSON(w, http.StatusOK, doc)
}

func (fi *fakeIssuer) jwks(w http.ResponseWriter, r *http.Request) {
	fi.jwksHits.Add(1)
	if fi.Down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	fi.mu.Lock()
	set := jose.JSONWebKeySet{Keys: fi.published}
	fi.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	json.NewEncoder(w).Encode(set)
}

// introspect is RFC 7662 for the guard's client (client_secret_basic).
func (fi *fakeIssuer) introspect(w http.ResponseWriter, r *http.Request) {
	fi.introspections.Add(1)
	fi.mu.Lock()
	gate, entered := fi.gate, fi.entered
	fi.mu.Unlock()
	if gate != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		<-gate
	}
	if fi.Down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if fi.IntrospectFail.Load() {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	id, secret, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if !ok || id != guardClientID || secret != guardSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	tok := r.PostForm.Get("token")
	fi.mu.Lock()
	info, known := fi.opaque[tok]
	revoked := fi.revoked[tok]
	info = maps.Clone(info)
	fi.mu.Unlock()
	if !known || revoked {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	if exp, ok := info["exp"].(int64); ok && fi.clock.Now().Unix() >= exp {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	info["active"] = true
	writeJSON(w, http.StatusOK, info)
}

// issueOpaque registers an opaque access token with the standard answer,
// edited by edit, and returns it.
func (fi *fakeIssuer) issueOpaque(edit func(info map[string]any)) string {
	now := fi.clock.Now()
	info := map[string]any{
		"iss": fi.issuer, "sub": "alice", "aud": apiAudience, "client_id": "cli", "token_type": "Bearer",
		"scope": "read:items write:items", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(info)
	}
	tok := "op_" + randomID()
	fi.set(func(fi *fakeIssuer) { fi.opaque[tok] = info })
	return tok
}

func (fi *fakeIssuer) revoke(tok string) { fi.set(func(fi *fakeIssuer) { fi.revoked[tok] = true }) }

// accessClaims are an RFC 9068 access token's claims, as the embedded
// server issues them.
func (fi *fakeIssuer) accessClaims() map[string]any {
	now := fi.clock.Now()
	return map[string]any{
		"iss": fi.issuer, "sub": "alice", "aud": []any{apiAudience}, "client_id": "cli",
		"scope": "read:items write:items", "jti": randomID(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// jwtSpec is how a test token is made.
type jwtSpec struct {
	key     *signingKey    // default: the issuer's current key
	typ     string         // default at+jwt; "-" for none
	headers map[string]any // extra protected headers
	embed   bool           // embed the public key as jwk
	edit    func(c map[string]any)
}

// mint makes a JWT access token with go-jose.
func (fi *fakeIssuer) mint(spec jwtSpec) string {
	fi.t.Helper()
	claims := fi.accessClaims()
	if spec.edit != nil {
		spec.edit(claims)
	}
	key := spec.key
	if key == nil {
		fi.mu.Lock()
		key = fi.key
		fi.mu.Unlock()
	}
	return signJWT(fi.t, key, claims, spec)
}

func signJWT(t testing.TB, key *signingKey, claims map[string]any, spec jwtSpec) string {
	t.Helper()
	opts := &jose.SignerOptions{EmbedJWK: spec.embed}
	switch spec.typ {
	case "":
		opts = opts.WithType("at+jwt")
	case "-":
	default:
		opts = opts.WithType(jose.ContentType(spec.typ))
	}
	for k, v := range spec.headers {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	var signingKey any = jose.JSONWebKey{Key: key.priv, KeyID: key.kid}
	if spec.embed {
		signingKey = key.priv // go-jose embeds the public half as jwk
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: signingKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// guardCounts counts the guard's metrics.
type guardCounts struct {
	mu                      sync.Mutex
	allowed, refused        map[string]int
	introspected, keysFetch [2]int // [failed, ok]
}

func (m *guardCounts) Allowed(kind string) { m.mu.Lock(); m.allowed[kind]++; m.mu.Unlock() }
func (m *guardCounts) Refused(code string) { m.mu.Lock(); m.refused[code]++; m.mu.Unlock() }
func (m *guardCounts) Introspected(ok bool) {
	m.mu.Lock()
	m.introspected[b2i(ok)]++
	m.mu.Unlock()
}
func (m *guardCounts) KeysFetched(ok bool) { m.mu.Lock(); m.keysFetch[b2i(ok)]++; m.mu.Unlock() }

func (m *guardCounts) refusedCount(code string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused[code]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// guardSpec are the knobs of a test API.
type guardSpec struct {
	edits  []func(c *proxy.GuardConfig)
	issuer func(fi *fakeIssuer)
	noWait bool
}

type guardOption func(*guardSpec)

// withGuardConfig edits the guard's configuration; fields left zero get
// the test defaults (issuer, audience, client, HTTP client, clock).
func withGuardConfig(f func(c *proxy.GuardConfig)) guardOption {
	return func(s *guardSpec) { s.edits = append(s.edits, f) }
}

// withIssuer edits the fake issuer before the guard starts.
func withIssuer(f func(fi *fakeIssuer)) guardOption { return func(s *guardSpec) { s.issuer = f } }

// withoutWaiting does not wait for the guard to be ready.
func withoutWaiting() guardOption { return func(s *guardSpec) { s.noWait = true } }

// guardEnv is a Guard in front of the recording upstream, with its issuer.
type guardEnv struct {
	t       testing.TB
	iss     *fakeIssuer
	clock   *fakeClock
	g       *proxy.Guard
	cfg     proxy.GuardConfig
	counts  *guardCounts
	handler http.Handler
}

func newGuardEnv(t testing.TB, opts ...guardOption) *guardEnv {
	t.Helper()
	spec := &guardSpec{}
	for _, o := range opts {
		o(spec)
	}
	clock := newFakeClock()
	iss := newFakeIssuer(t, clock)
	if spec.issuer != nil {
		spec.issuer(iss)
	}
	counts := &guardCounts{allowed: map[string]int{}, refused: map[string]int{}}
	cfg := proxy.GuardConfig{
		Issuer: iss.issuer, Audiences: []string{apiAudience}, ClientID: guardClientID, ClientSecret: guardSecret,
		HTTPClient: iss.srv.Client(), Now: clock.Now, Metrics: counts,
	}
	for _, edit := range spec.edits {
		edit(&cfg)
	}
	g, err := proxy.NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	e := &guardEnv{t: t, iss: iss, clock: clock, g: g, cfg: cfg, counts: counts}
	e.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, done := g.Serve(w, r)
		if done {
			return
		}
		if tok == nil && r.Method != http.MethodOptions {
			t.Errorf("Serve let a request through without a token")
			http.Error(w, "no token", http.StatusInternalServerError)
			return
		}
		g.Prepare(r, tok)
		w.Header().Set("X-Upstream-Query", r.URL.RawQuery)
		upstream(w, r)
	})
	if !spec.noWait {
		e.waitReady()
	}
	return e
}

// waitReady waits for discovery (an event, not a sleep; the timeout only
// fails a test that would otherwise hang).
func (e *guardEnv) waitReady() {
	e.t.Helper()
	select {
	case <-e.g.Ready():
	case <-time.After(20 * time.Second):
		e.t.Fatal("the guard did not become ready")
	}
}

// apiRequest is a request to https://api.example with an Authorization
// header (none when auth is "").
func apiRequest(method, target, auth string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Host = apiHost
	r.TLS = &tls.ConnectionState{}
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func (e *guardEnv) do(r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, r)
	return rec.Result()
}

// bearer sends GET path with a bearer token.
func (e *guardEnv) bearer(path, token string) *http.Response {
	return e.do(apiRequest(http.MethodGet, path, "Bearer "+token))
}

// expectAllowed checks the request reached the upstream and returns what
// it saw.
func expectAllowed(t testing.TB, resp *http.Response) upstreamSeen {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("refused: status %d WWW-Authenticate %q body %s", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), body(resp))
	}
	var seen upstreamSeen
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	return seen
}

// expectRefused checks resp is a refusal with status and OAuth error code
// (in the body and in the challenge of scheme), not reaching the upstream.
func expectRefused(t testing.TB, resp *http.Response, status int, scheme, code string) {
	t.Helper()
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Upstream") != "" {
		t.Fatalf("the request reached the upstream: status %d", resp.StatusCode)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; WWW-Authenticate %q body %s", resp.StatusCode, status, resp.Header.Values("WWW-Authenticate"), raw)
	}
	var b struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.Error != code {
		t.Errorf("body %s, want error %q", raw, code)
	}
	if status == http.StatusServiceUnavailable {
		return
	}
	if ch := challengeOf(resp, scheme); !strings.Contains(ch, `error="`+code+`"`) {
		t.Errorf("%s challenge %q does not carry error=%q; all: %q", scheme, ch, code, resp.Header.Values("WWW-Authenticate"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

// challengeOf returns the WWW-Authenticate challenge of scheme.
func challengeOf(resp *http.Response, scheme string) string {
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(v, scheme+" ") {
			return v
		}
	}
	return ""
}

// staticIntrospector is an in-process Introspector that counts calls.
type staticIntrospector struct {
	calls   atomic.Int64
	answers map[string]map[string]any
}

func (s *staticIntrospector) Introspect(_ context.Context, token string) (map[string]any, error) {
	s.calls.Add(1)
	if a, ok := s.answers[token]; ok {
		return a, nil
	}
	return map[string]any{"active": false}, nil
}
