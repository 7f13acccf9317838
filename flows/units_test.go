package flows

// Unit tests of the building blocks: configuration, passwords, scopes,
// the throttle, hashes and the grant registry.

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	good := func() Config {
		return Config{Issuer: testIssuer, Store: env.store, Keys: env.keys, CookieSecrets: [][]byte{testCookieSecret}}
	}
	cases := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }},
		{"relative issuer", func(c *Config) { c.Issuer = "auth.example.com" }},
		{"issuer with another scheme", func(c *Config) { c.Issuer = "ftp://auth.example.com" }},
		{"issuer with a query", func(c *Config) { c.Issuer = "https://auth.example.com/?tenant=a" }},
		{"issuer with a fragment", func(c *Config) { c.Issuer = "https://auth.example.com/#x" }},
		{"no store", func(c *Config) { c.Store = nil }},
		{"no keys", func(c *Config) { c.Keys = nil }},
		{"no cookie secret", func(c *Config) { c.CookieSecrets = nil }},
		{"short cookie secret", func(c *Config) { c.CookieSecrets = [][]byte{[]byte("short")} }},
		{"short second cookie secret", func(c *Config) { c.CookieSecrets = [][]byte{testCookieSecret, bytes.Repeat([]byte("x"), 31)} }},
		{"brand colour injection", func(c *Config) { c.Brand.Color = "red;}body{display:none" }},
		{"brand logo javascript", func(c *Config) { c.Brand.LogoURL = "javascript:alert(1)" }},
		{"brand logo relative", func(c *Config) { c.Brand.LogoURL = "logo.png" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mutate(&cfg)
			if _, err := New(cfg); err == nil {
				t.Errorf("New accepted %s", tc.name)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		cfg := good()
		cfg.Brand = Brand{Name: "Acme", Color: "#abc", LogoURL: "/logo.png"}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.cfg.AccessTokenTTL != time.Hour || s.cfg.CodeTTL != time.Minute || s.cfg.RefreshTokenTTL != 30*24*time.Hour || s.cfg.SessionTTL != 24*time.Hour {
			t.Errorf("defaults: %+v", s.cfg)
		}
	})
}

func TestBrandIsRenderedSafely(t *testing.T) {
	t.Parallel()
	env := newTestServer(t, func(c *Config) {
		c.Brand = Brand{Name: `<b>Acme</b>`, Color: "#123456", LogoURL: "https://cdn.example.com/logo.png"}
	})
	res := env.newBrowser().authorize(newAuthRequest(webappID, webappRedirect, "openid").Values)
	if strings.Contains(res.Body, "<b>Acme</b>") || !strings.Contains(res.Body, "&lt;b&gt;Acme&lt;/b&gt;") {
		t.Errorf("brand name not escaped")
	}
	if !strings.Contains(res.Body, "#123456") || !strings.Contains(res.Body, "https://cdn.example.com/logo.png") {
		t.Errorf("brand colour or logo missing")
	}
}

func TestVerifyPassword(t *testing.T) {
	t.Parallel()
	aliceHash, bobHash := passwordHashes(t)
	if aliceHash == bobHash || !strings.HasPrefix(aliceHash, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("HashPassword output %q", aliceHash)
	}
	if ok, err := VerifyPassword(aliceHash, alicePassword); !ok || err != nil {
		t.Errorf("right password: %v %v", ok, err)
	}
	if ok, err := VerifyPassword(aliceHash, bobPassword); ok || err != nil {
		t.Errorf("wrong password: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(cheapHash("pw"), "pw"); !ok {
		t.Errorf("hash with other parameters does not verify")
	}
	parts := strings.Split(aliceHash, "$")
	malformed := map[string]string{
		"empty":            "",
		"bcrypt":           "$2a$10$abcdefghijklmnopqrstuuJ8mQOVTVkAXhFHBAm5zuhoYWJ4FqbG6",
		"argon2i":          strings.Replace(aliceHash, "argon2id", "argon2i", 1),
		"old version":      strings.Replace(aliceHash, "v=19", "v=16", 1),
		"no params":        "$argon2id$v=19$$" + parts[4] + "$" + parts[5],
		"zero memory":      strings.Replace(aliceHash, "m=65536", "m=0", 1),
		"4 GiB memory":     strings.Replace(aliceHash, "m=65536", "m=4194304", 1),
		"1000 passes":      strings.Replace(aliceHash, "t=3", "t=1000", 1),
		"zero threads":     strings.Replace(aliceHash, "p=2", "p=0", 1),
		"bad salt":         "$argon2id$v=19$m=65536,t=3,p=2$!!!$" + parts[5],
		"bad key":          "$argon2id$v=19$m=65536,t=3,p=2$" + parts[4] + "$!!!",
		"empty key":        "$argon2id$v=19$m=65536,t=3,p=2$" + parts[4] + "$",
		"huge key":         "$argon2id$v=19$m=65536,t=3,p=2$" + parts[4] + "$" + b64(make([]byte, 4096)),
		"too many fields":  aliceHash + "$x",
		"too few fields":   "$argon2id$v=19$m=65536,t=3,p=2$" + parts[4],
		"negative numbers": strings.Replace(aliceHash, "t=3", "t=-3", 1),
	}
	for name, phc := range malformed {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			ok, err := VerifyPassword(phc, alicePassword)
			if ok || err == nil {
				t.Errorf("VerifyPassword(%q) = %v, %v", phc, ok, err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("refusing a malformed hash took %v", time.Since(start))
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"openid", []string{"openid"}, false},
		{"openid  profile openid ", []string{"openid", "profile"}, false},
		{"read:items write:items", []string{"read:items", "write:items"}, false},
		{"a\tb", nil, true},
		{`"quoted"`, nil, true},
		{`back\slash`, nil, true},
		{"é", nil, true},
		{"nul\x00", nil, true},
		{"del\x7f", nil, true},
		{"!#[]~", []string{"!#[]~"}, false},
	}
	for _, tc := range cases {
		got, err := parseScope(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseScope(%q) error %v", tc.in, err)
			continue
		}
		if err != nil {
			if oe := asOAuth(err); oe.Code != "invalid_scope" {
				t.Errorf("parseScope(%q) error code %s", tc.in, oe.Code)
			}
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseScope(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHalfHash(t *testing.T) {
	t.Parallel()
	if got := halfHash("ES256", "token"); got != atHash("token") {
		t.Errorf("ES256 at_hash %s", got)
	}
	sum := sha512.Sum512([]byte("token"))
	if got := halfHash("EdDSA", "token"); got != base64.RawURLEncoding.EncodeToString(sum[:32]) {
		t.Errorf("EdDSA at_hash %s", got)
	}
}

func TestAudienceAcceptsStringOrArray(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{`"a"`: {"a"}, `["a","b"]`: {"a", "b"}, `[]`: {}} {
		var a audience
		if err := json.Unmarshal([]byte(in), &a); err != nil || !slices.Equal(a, want) {
			t.Errorf("%s: %v %v", in, a, err)
		}
	}
	for _, in := range []string{`1`, `{"a":1}`, `[1]`} {
		var a audience
		if err := json.Unmarshal([]byte(in), &a); err == nil {
			t.Errorf("%s accepted as audience %v", in, a)
		}
	}
}

func TestThrottleRefillsAndPrunes(t *testing.T) {
	t.Parallel()
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	th := newThrottle(ThrottleConfig{}, clock.Now)
	fail := func(user, ip string) bool {
		ok, _, done := th.Begin(user, ip)
		if ok {
			done(false)
		}
		return ok
	}
	for i := 0; i < 5; i++ {
		if !fail("alice", "ip1") {
			t.Fatalf("blocked after %d failures", i)
		}
	}
	ok, wait, _ := th.Begin("alice", "ip1")
	if ok || wait <= 0 || wait > time.Minute {
		t.Fatalf("after 5 failures: admitted=%v wait=%v", ok, wait)
	}
	// Refused attempts do not consume anything.
	for i := 0; i < 10; i++ {
		th.Begin("alice", "ip1")
	}
	if ok, _, done := th.Begin("bob", "ip2"); !ok {
		t.Errorf("another user from another IP is blocked")
	} else {
		done(true)
	}
	clock.Advance(time.Minute)
	if !fail("alice", "ip1") {
		t.Errorf("still blocked after a refill period")
	}
	if ok, _, _ := th.Begin("alice", "ip1"); ok {
		t.Errorf("a failure after the refill was not counted")
	}
	clock.Advance(10 * time.Minute)
	th.prune()
	if len(th.users) != 0 || len(th.ips) != 0 {
		t.Errorf("prune kept refilled buckets: %d users, %d IPs", len(th.users), len(th.ips))
	}
}

func TestThrottleSuccessCostsNothing(t *testing.T) {
	t.Parallel()
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	th := newThrottle(ThrottleConfig{PerUser: 2}, clock.Now)
	for i := 0; i < 10; i++ {
		ok, _, done := th.Begin("alice", "ip1")
		if !ok {
			t.Fatalf("successful sign-in %d was throttled", i)
		}
		done(true)
	}
}

func TestThrottleCountsAttemptsInFlight(t *testing.T) {
	t.Parallel()
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	th := newThrottle(ThrottleConfig{PerUser: 3}, clock.Now)
	var dones []func(bool)
	for i := 0; i < 3; i++ {
		ok, _, done := th.Begin("alice", "ip1")
		if !ok {
			t.Fatalf("attempt %d refused with only %d in flight", i, i)
		}
		dones = append(dones, done)
	}
	if ok, _, _ := th.Begin("alice", "ip1"); ok {
		t.Fatal("a fourth concurrent attempt was admitted past a burst of 3")
	}
	for _, done := range dones {
		done(false)
	}
	if ok, _, _ := th.Begin("alice", "ip1"); ok {
		t.Fatal("admitted after three recorded failures")
	}
}

// customGrant is a grant type plugged in from outside the package.
type customGrant struct{}

func (customGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	if req.Form.Get("fail") != "" {
		return nil, errInvalidGrant("refused by the custom grant")
	}
	return &TokenResponse{AccessToken: "custom-" + req.Client.ID, TokenType: "Bearer", ExpiresIn: 60}, nil
}

func TestRegisterGrantPlugsIntoTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	const gt = "urn:example:params:oauth:grant-type:custom"
	env.srv.RegisterGrant(gt, customGrant{})
	if err := env.store.PutClient(t.Context(), &store.Client{ID: "custom", SecretDigest: DigestSecret("custom-secret"), GrantTypes: []string{gt}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(toStrings(env.get(PathDiscovery, nil, nil).JSON(t)["grant_types_supported"]), gt) {
		t.Errorf("discovery does not list the registered grant")
	}
	cred := clientCred{"custom", "custom-secret", "basic"}
	if tr := env.tokenOK(cred, url.Values{"grant_type": {gt}}); tr.AccessToken != "custom-custom" {
		t.Errorf("custom grant response %+v", tr)
	}
	wantOAuthError(t, env.token(cred, url.Values{"grant_type": {gt}, "fail": {"1"}}), 400, "invalid_grant")
	// Registered grants still need the client to be allowed them.
	wantOAuthError(t, env.token(webappBasic, url.Values{"grant_type": {gt}}), 400, "unauthorized_client")
	wantOAuthError(t, env.token(cred, url.Values{"grant_type": {GrantClientCredentials}}), 400, "unauthorized_client")
}

func TestHandlesOnlyItsEndpoints(t *testing.T) {
	t.Parallel()
	env := newTestServer(t, func(c *Config) { c.Issuer = "https://auth.example.com/id" })
	for path, want := range map[string]bool{
		"/id" + PathAuthorize: true, "/id" + PathToken: true, "/id" + PathDiscovery: true, "/id/assets/style.css": true,
		"/id" + PathEndSession: true, PathAuthorize: false, "/id/other": false, "/idx" + PathToken: false, "/": false,
	} {
		if got := env.srv.Handles(httptestRequest(http.MethodGet, "https://auth.example.com"+path)); got != want {
			t.Errorf("Handles(%s) = %v, want %v", path, got, want)
		}
	}
}

func TestAssetsAreServed(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	res := env.get("/assets/style.css", nil, nil)
	if res.Status != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/assets/../templates/login.html", "/assets/missing.css", "/templates/login.html"} {
		r := httptestRequest(http.MethodGet, testIssuer+"/assets/x")
		r.URL.Path = p
		if res := env.serve(r); res.Status == http.StatusOK && strings.Contains(res.Body, "csrf_token") {
			t.Errorf("%s served a template", p)
		}
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, p := range []string{"/", "/admin", "/oauth/device", "/.well-known/other"} {
		if res := env.get(p, nil, nil); res.Status != http.StatusNotFound {
			t.Errorf("%s: %d", p, res.Status)
		}
	}
}

func TestBrowserAppsCanCallTokenEndpointsCrossOrigin(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, path := range []string{PathToken, PathUserinfo, PathRevoke} {
		r := httptestRequest(http.MethodOptions, "https://auth.example.com"+path)
		r.Header.Set("Origin", "https://spa.example.com")
		r.Header.Set("Access-Control-Request-Method", "POST")
		res := env.serve(r)
		if res.Status != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
			res.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s: %d %v", path, res.Status, res.Header)
		}
	}
	r := httptestRequest(http.MethodOptions, "https://auth.example.com"+PathIntrospect)
	r.Header.Set("Origin", "https://spa.example.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	if res := env.serve(r); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("introspection (server to server) allows cross-origin calls")
	}
}
