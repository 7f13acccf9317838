package flows

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/store"
)

// Clients of the client assertion tests, registered by newAssertionEnv.
const (
	// pkjwtID uses private_key_jwt with an inline JWKS (ES256 key k1).
	pkjwtID = "pkjwt"
	// victimID is a second private_key_jwt client with its own key.
	victimID = "pkjwt-victim"
	// pinnedID uses private_key_jwt with an RSA key and only PS256.
	pinnedID = "pkjwt-pinned"
	// csjwtID uses client_secret_jwt.
	csjwtID     = "csjwt"
	csjwtSecret = "client-secret-jwt-secret-at-least-32-bytes-long"
)

// assertionFixture holds the keys of the assertion test clients.
type assertionFixture struct {
	key      *ecdsa.PrivateKey // pkjwt's registered key, kid k1
	victim   *ecdsa.PrivateKey // victim's registered key, kid v1
	attacker *ecdsa.PrivateKey // registered nowhere
	rsaKey   *rsa.PrivateKey   // pinned's key, kid r1
	jwks     []byte            // pkjwt's registered JWKS
}

func newECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// publicJWKS is the JWK Set of the public halves of keys, by kid.
func publicJWKS(tb testing.TB, keys map[string]any) []byte {
	tb.Helper()
	set := jose.JSONWebKeySet{}
	for kid, k := range keys {
		pub := jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"}
		set.Keys = append(set.Keys, pub.Public())
	}
	raw, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// testRSAKey is generated once per test binary: RSA key generation is slow.
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newAssertionEnv is a test server with the assertion clients registered.
func newAssertionEnv(tb testing.TB, opts ...envOption) (*testEnv, *assertionFixture) {
	tb.Helper()
	env := newTestServer(tb, opts...)
	fx := &assertionFixture{key: newECKey(tb), victim: newECKey(tb), attacker: newECKey(tb), rsaKey: testRSAKey()}
	fx.jwks = publicJWKS(tb, map[string]any{"k1": fx.key})
	access := map[string][]string{apiID1: {"read:items"}}
	grants := []string{GrantClientCredentials}
	clients := []*store.Client{
		{ID: pkjwtID, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, JWKS: fx.jwks, GrantTypes: grants, APIAccess: access},
		{ID: victimID, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, JWKS: publicJWKS(tb, map[string]any{"v1": fx.victim}),
			GrantTypes: grants, APIAccess: access},
		{ID: pinnedID, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, TokenEndpointAuthSigningAlg: "PS256",
			JWKS: publicJWKS(tb, map[string]any{"r1": fx.rsaKey}), GrantTypes: grants, APIAccess: access},
		{ID: csjwtID, TokenEndpointAuthMethod: AuthMethodSecretJWT, SecretDigest: DigestSecret(csjwtSecret),
			HMACSecret: csjwtSecret, GrantTypes: grants, APIAccess: access},
	}
	for _, c := range clients {
		if err := ValidateAssertionClient(c); err != nil {
			tb.Fatalf("client %s: %v", c.ID, err)
		}
		if err := env.store.PutClient(context.Background(), c); err != nil {
			tb.Fatal(err)
		}
	}
	return env, fx
}

// assertionClaims are valid assertion claims for clientID at the
// environment's clock, with a fresh jti.
func (e *testEnv) assertionClaims(clientID string) map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": e.issuer,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomString(),
	}
}

// signAssertion signs claims as a compact JWS.
func signAssertion(tb testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// pkjwtAssertion is a valid assertion of the pkjwt client.
func (fx *assertionFixture) pkjwtAssertion(tb testing.TB, env *testEnv) string {
	return signAssertion(tb, fx.key, jose.ES256, "k1", env.assertionClaims(pkjwtID))
}

// csjwtAssertion is a valid assertion of the csjwt client.
func csjwtAssertion(tb testing.TB, env *testEnv) string {
	return signAssertion(tb, []byte(csjwtSecret), jose.HS256, "", env.assertionClaims(csjwtID))
}

// withAssertion adds a client assertion (and client_id, when not empty)
// to form.
func withAssertion(form url.Values, clientID, assertion string) url.Values {
	f := url.Values{}
	for k, v := range form {
		f[k] = slices.Clone(v)
	}
	f.Set("client_assertion_type", ClientAssertionType)
	f.Set("client_assertion", assertion)
	if clientID != "" {
		f.Set("client_id", clientID)
	}
	return f
}

var ccForm = url.Values{"grant_type": {GrantClientCredentials}}

// wantDescription checks that an error response's description contains
// want.
func wantDescription(tb testing.TB, res *response, want string) {
	tb.Helper()
	if d, _ := res.JSON(tb)["error_description"].(string); !strings.Contains(d, want) {
		tb.Errorf("error_description %q does not contain %q", d, want)
	}
}

func TestClientAssertionAuthenticatesAtTokenIntrospectionAndRevocation(t *testing.T) {
	env, fx := newAssertionEnv(t)
	tests := []struct {
		name     string
		clientID string
		sign     func() string
	}{
		{"private_key_jwt", pkjwtID, func() string { return fx.pkjwtAssertion(t, env) }},
		{"client_secret_jwt", csjwtID, func() string { return csjwtAssertion(t, env) }},
		{"private_key_jwt with PS256", pinnedID, func() string {
			return signAssertion(t, fx.rsaKey, jose.PS256, "r1", env.assertionClaims(pinnedID))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := env.postForm(PathToken, withAssertion(ccForm, tt.clientID, tt.sign()), nil)
			if res.Status != http.StatusOK {
				t.Fatalf("client_credentials: %d %s", res.Status, res.Body)
			}
			tok, _ := res.JSON(t)["access_token"].(string)
			info := env.postForm(PathIntrospect, withAssertion(url.Values{"token": {tok}}, tt.clientID, tt.sign()), nil)
			if info.Status != http.StatusOK || info.JSON(t)["active"] != true {
				t.Fatalf("introspection: %d %s", info.Status, info.Body)
			}
			if got := info.JSON(t)["client_id"]; got != tt.clientID {
				t.Errorf("introspected client_id %v, want %s", got, tt.clientID)
			}
			// Without client_id: the client is the assertion's sub.
			rev := env.postForm(PathRevoke, withAssertion(url.Values{"token": {tok}}, "", tt.sign()), nil)
			if rev.Status != http.StatusOK {
				t.Fatalf("revocation: %d %s", rev.Status, rev.Body)
			}
			if env.active(tok) {
				t.Error("the revoked token is still active")
			}
		})
	}
}

func TestClientAssertionAudience(t *testing.T) {
	env, fx := newAssertionEnv(t)
	tok := env.tokenOK(backendBasic, ccForm).AccessToken
	tests := []struct {
		name string
		path string
		aud  any
		ok   bool
	}{
		{"issuer at the token endpoint", PathToken, testIssuer, true},
		{"token endpoint at the token endpoint", PathToken, testIssuer + PathToken, true},
		{"token endpoint at introspection", PathIntrospect, testIssuer + PathToken, true},
		{"introspection endpoint at introspection", PathIntrospect, testIssuer + PathIntrospect, true},
		{"revocation endpoint at revocation", PathRevoke, testIssuer + PathRevoke, true},
		{"array naming the issuer among others", PathToken, []string{"https://other.example", testIssuer}, true},
		{"introspection endpoint at the token endpoint", PathToken, testIssuer + PathIntrospect, false},
		{"another server", PathToken, "https://other.example.com/oauth/token", false},
		{"issuer with a trailing slash", PathToken, testIssuer + "/", false},
		{"missing", PathToken, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := env.assertionClaims(pkjwtID)
			if tt.aud == nil {
				delete(claims, "aud")
			} else {
				claims["aud"] = tt.aud
			}
			form := ccForm
			if tt.path != PathToken {
				form = url.Values{"token": {tok}}
			}
			res := env.postForm(tt.path, withAssertion(form, pkjwtID, signAssertion(t, fx.key, jose.ES256, "k1", claims)), nil)
			if tt.ok && res.Status != http.StatusOK {
				t.Fatalf("refused: %d %s", res.Status, res.Body)
			}
			if !tt.ok {
				wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
				wantDescription(t, res, "aud must contain")
			}
		})
	}
}

func TestClientAssertionAudienceIgnoresHostHeader(t *testing.T) {
	env, fx := newAssertionEnv(t)
	claims := env.assertionClaims(pkjwtID)
	claims["aud"] = "https://evil.example/oauth/token"
	r := httptest.NewRequest(http.MethodPost, "https://evil.example"+PathToken,
		strings.NewReader(withAssertion(ccForm, pkjwtID, signAssertion(t, fx.key, jose.ES256, "k1", claims)).Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantOAuthError(t, env.serve(r), http.StatusUnauthorized, "invalid_client")
}

// noneJWT is an unsecured JWT (alg none, RFC 7519 §6), built by hand
// because no JOSE library will produce one.
func noneJWT(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

func TestClientAssertionAttacksRefused(t *testing.T) {
	env, fx := newAssertionEnv(t)
	now := env.clock.Now()
	// pk signs claims (after edit) as the pkjwt client with its key.
	pk := func(edit func(map[string]any)) string {
		c := env.assertionClaims(pkjwtID)
		edit(c)
		return signAssertion(t, fx.key, jose.ES256, "k1", c)
	}
	basic := func(id, secret string) http.Header {
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(id, secret)
		return r.Header
	}
	tests := []struct {
		name   string
		form   func() url.Values
		header http.Header
		status int
		code   string
		desc   string
	}{
		{name: "expired", status: 401, code: "invalid_client", desc: "expired",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }))
			}},
		{name: "expired beyond the leeway", status: 401, code: "invalid_client", desc: "expired",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["exp"] = now.Add(-assertionLeeway).Unix() }))
			}},
		{name: "exp too far ahead", status: 401, code: "invalid_client", desc: "more than 5m0s ahead",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["exp"] = now.Add(10 * time.Minute).Unix() }))
			}},
		{name: "missing exp", status: 401, code: "invalid_client", desc: "no exp",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { delete(c, "exp") }))
			}},
		{name: "missing jti", status: 401, code: "invalid_client", desc: "no jti",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { delete(c, "jti") }))
			}},
		{name: "jti too long", status: 401, code: "invalid_client", desc: "jti is longer",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) }))
			}},
		{name: "nbf in the future", status: 401, code: "invalid_client", desc: "not valid before",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }))
			}},
		{name: "iat in the future", status: 401, code: "invalid_client", desc: "iat is in the future",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() }))
			}},
		{name: "alg none", status: 401, code: "invalid_client", desc: "not a signed JWT",
			form: func() url.Values { return withAssertion(ccForm, pkjwtID, noneJWT(t, env.assertionClaims(pkjwtID))) }},
		{name: "HS256 signed with the registered public key", status: 401, code: "invalid_client", desc: "signed with HS256",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, signAssertion(t, fx.jwks, jose.HS256, "k1", env.assertionClaims(pkjwtID)))
			}},
		{name: "signed by an unregistered key", status: 401, code: "invalid_client", desc: "does not verify",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, signAssertion(t, fx.attacker, jose.ES256, "k1", env.assertionClaims(pkjwtID)))
			}},
		{name: "unknown kid", status: 401, code: "invalid_client", desc: `kid "k9"`,
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, signAssertion(t, fx.key, jose.ES256, "k9", env.assertionClaims(pkjwtID)))
			}},
		{name: "alg other than the registered signing alg", status: 401, code: "invalid_client", desc: "accepts PS256",
			form: func() url.Values {
				return withAssertion(ccForm, pinnedID, signAssertion(t, fx.rsaKey, jose.RS256, "r1", env.assertionClaims(pinnedID)))
			}},
		{name: "iss is not the client", status: 401, code: "invalid_client", desc: "iss must be the client_id",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["iss"] = "https://idp.example" }))
			}},
		{name: "sub is not the client", status: 401, code: "invalid_client", desc: "sub must be the client_id",
			form: func() url.Values {
				return withAssertion(ccForm, pkjwtID, pk(func(c map[string]any) { c["sub"] = victimID }))
			}},
		{name: "sub and iss of another client, signed with own key", status: 401, code: "invalid_client", desc: "does not verify",
			form: func() url.Values {
				c := env.assertionClaims(victimID)
				return withAssertion(ccForm, "", signAssertion(t, fx.key, jose.ES256, "v1", c))
			}},
		{name: "client_id of another client", status: 401, code: "invalid_client", desc: `no registered ES256 key with kid "k1"`,
			form: func() url.Values { return withAssertion(ccForm, victimID, fx.pkjwtAssertion(t, env)) }},
		{name: "assertion and HTTP Basic together", status: 400, code: "invalid_request", desc: "one client authentication method",
			header: basic(backendID, backendSecret),
			form:   func() url.Values { return withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env)) }},
		{name: "assertion and client_secret together", status: 400, code: "invalid_request", desc: "one client authentication method",
			form: func() url.Values {
				f := withAssertion(ccForm, csjwtID, csjwtAssertion(t, env))
				f.Set("client_secret", csjwtSecret)
				return f
			}},
		{name: "secret by HTTP Basic for a private_key_jwt client", status: 401, code: "invalid_client", desc: "registered for private_key_jwt",
			header: basic(pkjwtID, "guess"), form: func() url.Values { return ccForm }},
		{name: "the right secret by HTTP Basic for a client_secret_jwt client", status: 401, code: "invalid_client",
			desc: "registered for client_secret_jwt", header: basic(csjwtID, csjwtSecret), form: func() url.Values { return ccForm }},
		{name: "client_secret_jwt with the wrong secret", status: 401, code: "invalid_client", desc: "MAC does not verify",
			form: func() url.Values {
				return withAssertion(ccForm, csjwtID,
					signAssertion(t, []byte("another-secret-that-is-32-bytes-long!!"), jose.HS256, "", env.assertionClaims(csjwtID)))
			}},
		{name: "client_secret_jwt signed with a private key", status: 401, code: "invalid_client", desc: "signed with ES256",
			form: func() url.Values {
				return withAssertion(ccForm, csjwtID, signAssertion(t, fx.key, jose.ES256, "", env.assertionClaims(csjwtID)))
			}},
		{name: "assertion from a client_secret_basic client", status: 401, code: "invalid_client", desc: "registered for client_secret_basic",
			form: func() url.Values {
				return withAssertion(ccForm, backendID,
					signAssertion(t, []byte(backendSecret+backendSecret+backendSecret), jose.HS256, "", env.assertionClaims(backendID)))
			}},
		{name: "wrong client_assertion_type", status: 401, code: "invalid_client", desc: "client_assertion_type must be",
			form: func() url.Values {
				f := withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env))
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
				return f
			}},
		{name: "malformed assertion", status: 401, code: "invalid_client", desc: "not a signed JWT",
			form: func() url.Values { return withAssertion(ccForm, pkjwtID, "not.a.jwt") }},
		{name: "assertion type without an assertion", status: 400, code: "invalid_request", desc: "together",
			form: func() url.Values { return withAssertion(ccForm, pkjwtID, "") }},
		{name: "oversized assertion", status: 401, code: "invalid_client", desc: "larger than",
			form: func() url.Values { return withAssertion(ccForm, pkjwtID, strings.Repeat("a", maxAssertionBytes+1)) }},
		{name: "unknown client", status: 401, code: "invalid_client", desc: "client authentication failed",
			form: func() url.Values {
				return withAssertion(ccForm, "", signAssertion(t, fx.attacker, jose.ES256, "k1", env.assertionClaims("nobody")))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := env.postForm(PathToken, tt.form(), tt.header)
			wantOAuthError(t, res, tt.status, tt.code)
			wantDescription(t, res, tt.desc)
			if strings.Contains(res.Body, csjwtSecret) || strings.Contains(res.Body, backendSecret) {
				t.Errorf("the error echoes a secret: %s", res.Body)
			}
		})
	}
}

func TestClientAssertionWithoutKIDTriesAFewKeysOnly(t *testing.T) {
	env, _ := newAssertionEnv(t)
	keys := map[string]any{}
	var signing *ecdsa.PrivateKey
	for i := range maxKeysWithoutKID + 1 {
		signing = newECKey(t)
		keys[string(rune('a'+i))] = signing
	}
	tests := []struct {
		name string
		keys int
		ok   bool
	}{
		{"two keys", 2, true},
		{"more keys than are tried without a kid", maxKeysWithoutKID + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]any{"signing": signing}
			for kid, k := range keys {
				if len(set) < tt.keys {
					set[kid] = k
				}
			}
			id := "pkjwt-" + strings.ReplaceAll(tt.name, " ", "-")
			c := &store.Client{ID: id, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, JWKS: publicJWKS(t, set),
				GrantTypes: []string{GrantClientCredentials}, APIAccess: map[string][]string{apiID1: {"read:items"}}}
			if err := env.store.PutClient(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			res := env.postForm(PathToken, withAssertion(ccForm, id, signAssertion(t, signing, jose.ES256, "", env.assertionClaims(id))), nil)
			if tt.ok && res.Status != http.StatusOK {
				t.Fatalf("refused: %d %s", res.Status, res.Body)
			}
			if !tt.ok {
				wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
				wantDescription(t, res, "name the signing key with kid")
			}
		})
	}
}

func TestClientAssertionReplayRefused(t *testing.T) {
	env, fx := newAssertionEnv(t)
	tok := env.tokenOK(backendBasic, ccForm).AccessToken
	tests := []struct {
		name         string
		first, again string // endpoint paths
	}{
		{"at the token endpoint", PathToken, PathToken},
		{"at introspection after the token endpoint", PathToken, PathIntrospect},
		{"at revocation after introspection", PathIntrospect, PathRevoke},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := fx.pkjwtAssertion(t, env)
			form := func(path string) url.Values {
				if path == PathToken {
					return withAssertion(ccForm, pkjwtID, a)
				}
				return withAssertion(url.Values{"token": {tok}}, pkjwtID, a)
			}
			if res := env.postForm(tt.first, form(tt.first), nil); res.Status != http.StatusOK {
				t.Fatalf("first use: %d %s", res.Status, res.Body)
			}
			res := env.postForm(tt.again, form(tt.again), nil)
			wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
			wantDescription(t, res, "already used")
		})
	}
	t.Run("the same jti from two clients", func(t *testing.T) {
		c1, c2 := env.assertionClaims(pkjwtID), env.assertionClaims(csjwtID)
		c1["jti"], c2["jti"] = "shared-jti", "shared-jti"
		for _, f := range []url.Values{
			withAssertion(ccForm, pkjwtID, signAssertion(t, fx.key, jose.ES256, "k1", c1)),
			withAssertion(ccForm, csjwtID, signAssertion(t, []byte(csjwtSecret), jose.HS256, "", c2)),
		} {
			if res := env.postForm(PathToken, f, nil); res.Status != http.StatusOK {
				t.Fatalf("%s: %d %s", f.Get("client_id"), res.Status, res.Body)
			}
		}
	})
}

func TestClientAssertionConcurrentReplaysAcceptOne(t *testing.T) {
	env, fx := newAssertionEnv(t)
	form := withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env))
	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { statuses <- env.postForm(PathToken, form, nil).Status })
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for st := range statuses {
		if st == http.StatusOK {
			ok++
		} else if st != http.StatusUnauthorized {
			t.Errorf("status %d, want 200 or 401", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one assertion succeeded, want exactly 1", ok, n)
	}
}

func TestClientAssertionReplayRefusedAfterRestart(t *testing.T) {
	env, fx := newAssertionEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.srv.Background(ctx, time.Hour)
	}()
	a := fx.pkjwtAssertion(t, env)
	if res := env.postForm(PathToken, withAssertion(ccForm, pkjwtID, a), nil); res.Status != http.StatusOK {
		t.Fatalf("first use: %d %s", res.Status, res.Body)
	}
	// Stopping Background writes what is still queued.
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Background did not return")
	}

	restarted, err := New(Config{Issuer: testIssuer, Store: env.store, Keys: env.keys,
		CookieSecrets: [][]byte{testCookieSecret}, Now: env.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	env.handler = restarted
	res := env.postForm(PathToken, withAssertion(ccForm, pkjwtID, a), nil)
	wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
	wantDescription(t, res, "already used")
	// A fresh assertion still works on the new server.
	if res := env.postForm(PathToken, withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env)), nil); res.Status != http.StatusOK {
		t.Fatalf("fresh assertion after restart: %d %s", res.Status, res.Body)
	}
}

func TestClientAssertionReplayCacheFailsClosedWhenFull(t *testing.T) {
	env, fx := newAssertionEnv(t)
	env.allow500.Store(true) // 503 on purpose
	env.srv.assertions.used.limit = 2
	for i := range 2 {
		if res := env.postForm(PathToken, withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env)), nil); res.Status != http.StatusOK {
			t.Fatalf("assertion %d: %d %s", i, res.Status, res.Body)
		}
	}
	wantOAuthError(t, env.postForm(PathToken, withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env)), nil),
		http.StatusServiceUnavailable, "temporarily_unavailable")
	// Once the remembered assertions expire, there is room again.
	env.clock.Advance(time.Minute + assertionLeeway + time.Second)
	if res := env.postForm(PathToken, withAssertion(ccForm, pkjwtID, fx.pkjwtAssertion(t, env)), nil); res.Status != http.StatusOK {
		t.Fatalf("after expiry: %d %s", res.Status, res.Body)
	}
}

// jwksServer serves a JWK Set that a test can replace, counting fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	js := &jwksServer{}
	js.body.Store(&body)
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		js.fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*js.body.Load())
	}))
	t.Cleanup(js.Close)
	return js
}

func TestClientAssertionJWKSURIFetchedCachedAndRefetched(t *testing.T) {
	env, _ := newAssertionEnv(t)
	k1, k2 := newECKey(t), newECKey(t)
	js := newJWKSServer(t, publicJWKS(t, map[string]any{"k1": k1}))
	const id = "pkjwt-uri"
	c := &store.Client{ID: id, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, JWKSURI: js.URL + "/jwks.json",
		GrantTypes: []string{GrantClientCredentials}, APIAccess: map[string][]string{apiID1: {"read:items"}}}
	if err := env.store.PutClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	try := func(key *ecdsa.PrivateKey, kid string) *response {
		return env.postForm(PathToken, withAssertion(ccForm, id, signAssertion(t, key, jose.ES256, kid, env.assertionClaims(id))), nil)
	}
	steps := []struct {
		name    string
		advance time.Duration
		rotate  []byte // JWKS served from this step on, when not nil
		key     *ecdsa.PrivateKey
		kid     string
		ok      bool
		fetches int32
	}{
		{name: "first use fetches", key: k1, kid: "k1", ok: true, fetches: 1},
		{name: "second use is served from the cache", key: k1, kid: "k1", ok: true, fetches: 1},
		{name: "a rotated-in kid refetches", rotate: publicJWKS(t, map[string]any{"k1": k1, "k2": k2}),
			advance: jwksRefetchInterval, key: k2, kid: "k2", ok: true, fetches: 2},
		{name: "an unknown kid right after does not refetch", key: k2, kid: "k3", fetches: 2},
		{name: "an unknown kid after the interval refetches", advance: jwksRefetchInterval + time.Second, key: k2, kid: "k3", fetches: 3},
		{name: "a key dropped by the client stays usable until the cache expires", rotate: publicJWKS(t, map[string]any{"k2": k2}),
			key: k1, kid: "k1", ok: true, fetches: 3},
		{name: "after the TTL the set is fetched again", advance: jwksCacheTTL, key: k1, kid: "k1", fetches: 4},
		{name: "the current key works", key: k2, kid: "k2", ok: true, fetches: 4},
	}
	for _, st := range steps {
		if st.rotate != nil {
			js.body.Store(&st.rotate)
		}
		env.clock.Advance(st.advance)
		res := try(st.key, st.kid)
		if st.ok && res.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", st.name, res.Status, res.Body)
		}
		if !st.ok && res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s, want 401", st.name, res.Status, res.Body)
		}
		if got := js.fetches.Load(); got != st.fetches {
			t.Fatalf("%s: %d fetches, want %d", st.name, got, st.fetches)
		}
	}
}

func TestClientAssertionJWKSURIFailures(t *testing.T) {
	big := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`)
	key := newECKey(t)
	tests := []struct {
		name   string
		status int
		body   []byte
	}{
		{"an error status", http.StatusNotFound, []byte(`{}`)},
		{"a private key", http.StatusOK, func() []byte {
			raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1"}}})
			return raw
		}()},
		{"a body over the limit", http.StatusOK, big},
		{"not JSON", http.StatusOK, []byte("<html>")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestServer(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				w.Write(tt.body)
			}))
			defer srv.Close()
			const id = "pkjwt-uri"
			c := &store.Client{ID: id, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, JWKSURI: srv.URL,
				GrantTypes: []string{GrantClientCredentials}, APIAccess: map[string][]string{apiID1: {"read:items"}}}
			if err := env.store.PutClient(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			res := env.postForm(PathToken, withAssertion(ccForm, id, signAssertion(t, key, jose.ES256, "k1", env.assertionClaims(id))), nil)
			wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
			wantDescription(t, res, "could not be fetched")
		})
	}
}

func TestValidateJWKSURI(t *testing.T) {
	tests := []struct {
		uri string
		ok  bool
	}{
		{"https://client.example.com/jwks.json", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://[::1]/jwks", true},
		{"http://localhost/jwks", true},
		{"http://client.example.com/jwks", false},
		{"ftp://client.example.com/jwks", false},
		{"/jwks.json", false},
		{"https://user:pw@client.example.com/jwks", false},
		{"https://client.example.com/jwks#frag", false},
	}
	for _, tt := range tests {
		if err := ValidateJWKSURI(tt.uri); (err == nil) != tt.ok {
			t.Errorf("ValidateJWKSURI(%q) = %v, want ok=%v", tt.uri, err, tt.ok)
		}
	}
}

func TestParseClientJWKSRefusesUnusableKeys(t *testing.T) {
	ec := newECKey(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(keys ...jose.JSONWebKey) []byte {
		raw, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name string
		raw  []byte
		want string // "" when the set is accepted
	}{
		{"a public EC key", marshal(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "k1"}), ""},
		{"a private EC key", marshal(jose.JSONWebKey{Key: ec, KeyID: "k1"}), "contains a private key; register the public key only"},
		{"a symmetric key", marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "s"}), "symmetric"},
		{"a 1024-bit RSA key", marshal(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "r"}), "use 2048 bits"},
		{"an alg that does not fit the key", marshal(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "k1", Algorithm: "RS256"}), "cannot sign with"},
		{"an HMAC alg", marshal(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "k1", Algorithm: "HS256"}), "has alg"},
		{"only an encryption key", marshal(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "e", Use: "enc"}), "no signing key"},
		{"no keys", []byte(`{"keys":[]}`), "no signing key"},
		{"not a JWK Set", []byte(`[1,2]`), "not a JSON object"},
		{"an unknown key type", []byte(`{"keys":[{"kty":"XYZ","kid":"x"}]}`), "kid \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClientJWKS(tt.raw)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDiscoveryAdvertisesClientAssertionMethods(t *testing.T) {
	env := newTestServer(t)
	md := env.get(PathDiscovery, nil, nil).JSON(t)
	has := func(member, v string) bool {
		list, _ := md[member].([]any)
		return slices.Contains(list, any(v))
	}
	for _, member := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
		"revocation_endpoint_auth_methods_supported"} {
		for _, m := range []string{AuthMethodSecretJWT, AuthMethodPrivateKeyJWT} {
			if !has(member, m) {
				t.Errorf("%s lacks %s: %v", member, m, md[member])
			}
		}
	}
	for _, member := range []string{"token_endpoint_auth_signing_alg_values_supported",
		"introspection_endpoint_auth_signing_alg_values_supported", "revocation_endpoint_auth_signing_alg_values_supported"} {
		if !has(member, "ES256") || !has(member, "HS256") || has(member, "none") {
			t.Errorf("%s = %v", member, md[member])
		}
	}
	if has("introspection_endpoint_auth_methods_supported", AuthMethodNone) {
		t.Error("introspection must not advertise none")
	}
}
