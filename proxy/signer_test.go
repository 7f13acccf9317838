package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// verifyWithJWKS checks token against the signer's published JWKS, as an
// upstream app or a provider would, and returns its typ and claims.
func verifyWithJWKS(t *testing.T, jwks []byte, token string) (string, map[string]any) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS does not decode: %v", err)
	}
	algs := []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.EdDSA}
	tok, err := jwt.ParseSigned(token, algs)
	if err != nil {
		t.Fatalf("not a JWS: %v", err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS", tok.Headers[0].KeyID)
	}
	claims := map[string]any{}
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string)
	return typ, claims
}

func TestSignerAcceptsEveryKeyTypeAndPublishesOnlyThePublicKey(t *testing.T) {
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name string
		key  crypto.Signer
		alg  jose.SignatureAlgorithm
	}{
		{"P-256", ec256, jose.ES256},
		{"P-384", ec384, jose.ES384},
		{"RSA", rsaKey, jose.RS256},
		{"Ed25519", edKey, jose.EdDSA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSigner(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if s.Alg() != tc.alg {
				t.Errorf("alg %s, want %s", s.Alg(), tc.alg)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(s.JWKS(), &set); err != nil || len(set.Keys) != 1 {
				t.Fatalf("JWKS %s: %v", s.JWKS(), err)
			}
			if !set.Keys[0].IsPublic() || strings.Contains(string(s.JWKS()), `"d"`) {
				t.Errorf("JWKS leaks the private key: %s", s.JWKS())
			}
			if set.Keys[0].KeyID != s.KeyID() || set.Keys[0].Algorithm != string(tc.alg) {
				t.Errorf("JWKS kid/alg %q/%q, want %q/%q", set.Keys[0].KeyID, set.Keys[0].Algorithm, s.KeyID(), tc.alg)
			}
			tok, err := s.sign(map[string]any{"sub": "alice"}, "JWT")
			if err != nil {
				t.Fatal(err)
			}
			if typ, claims := verifyWithJWKS(t, s.JWKS(), tok); typ != "JWT" || claims["sub"] != "alice" {
				t.Errorf("typ %q claims %v", typ, claims)
			}
			again, _ := NewSigner(tc.key)
			if again.KeyID() != s.KeyID() {
				t.Error("the kid of the same key changed: it must be stable across restarts")
			}
		})
	}
}

func TestSignerRefusesWeakOrUnknownKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewSigner(small); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("1024-bit RSA key: %v, want refused as too small", err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if _, err := NewSigner(p224); err == nil {
		t.Error("P-224 key accepted")
	}
}

func TestParseSigningKey(t *testing.T) {
	generated, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := x509.MarshalPKCS1PrivateKey(rsaKey)
	pub, _ := x509.MarshalPKIXPublicKey(ec.Public())
	cases := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"generated PKCS #8", generated, ""},
		{"SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ""},
		{"PKCS #1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1}), ""},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), "not a private key"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"corrupt", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), "asn1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseSigningKey(tc.pem)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := NewSigner(key); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func newTestSigner(t *testing.T) *Signer {
	t.Helper()
	raw, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseSigningKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRequestObjectCarriesTheRequestSignedForTheProvider(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := &Gateway{cfg: Config{ClientID: "webapp", Signer: newTestSigner(t)}, now: func() time.Time { return now }}
	params := url.Values{
		"response_type": {"code"}, "client_id": {"webapp"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid email"}, "state": {"st"}, "nonce": {"nn"},
		"code_challenge": {"ch"}, "code_challenge_method": {"S256"},
	}
	out, err := g.jarParams(params, "https://op.example")
	if err != nil {
		t.Fatal(err)
	}
	if out.Get("client_id") != "webapp" || out.Get("response_type") != "code" || out.Get("scope") != "openid email" {
		t.Errorf("outer parameters %v: OIDC needs client_id, response_type and scope beside the request", out)
	}
	for _, leaked := range []string{"state", "nonce", "code_challenge", "redirect_uri"} {
		if out.Has(leaked) {
			t.Errorf("%s travels outside the signed request object", leaked)
		}
	}
	typ, claims := verifyWithJWKS(t, g.cfg.Signer.JWKS(), out.Get("request"))
	if typ != "oauth-authz-req+jwt" {
		t.Errorf("typ %q, want oauth-authz-req+jwt (RFC 9101 §10.8)", typ)
	}
	want := map[string]any{
		"iss": "webapp", "aud": "https://op.example", "client_id": "webapp", "response_type": "code",
		"redirect_uri": "https://app.example/cb", "scope": "openid email", "state": "st", "nonce": "nn",
		"code_challenge": "ch", "code_challenge_method": "S256",
		"iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Add(requestObjectTTL).Unix()),
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("request object %s = %v, want %v", k, claims[k], v)
		}
	}
	if jti, _ := claims["jti"].(string); len(jti) < 20 {
		t.Errorf("jti %q: every request object needs a unique id", jti)
	}
}

func TestIdentityAssertionIsShortLivedAndVerifiable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := &Gateway{cfg: Config{Issuer: "https://op.example", Signer: newTestSigner(t)}, now: func() time.Time { return now }}
	id := &Identity{Subject: "alice", Claims: map[string]any{
		"email": "alice@example.com", "groups": []any{"admins"}, "name": "Alice", "secret_internal": "x",
	}}
	r := httptest.NewRequest(http.MethodGet, "http://app.example/page", nil)
	tok, err := g.identityAssertion(r, id)
	if err != nil {
		t.Fatal(err)
	}
	_, claims := verifyWithJWKS(t, g.cfg.Signer.JWKS(), tok)
	if claims["iss"] != "http://app.example" || claims["aud"] != "http://app.example" || claims["sub"] != "alice" ||
		claims["email"] != "alice@example.com" || claims["idp"] != "https://op.example" {
		t.Errorf("claims %v", claims)
	}
	if exp := claims["exp"].(float64); exp != float64(now.Add(assertionTTL).Unix()) || assertionTTL > 5*time.Minute {
		t.Errorf("exp %v: an assertion must be short-lived", exp)
	}
	if _, ok := claims["secret_internal"]; ok {
		t.Error("the assertion copies claims beyond the identity ones")
	}

	g.cfg.AssertionAudience = "https://backend.internal"
	tok, _ = g.identityAssertion(r, id)
	if _, claims := verifyWithJWKS(t, g.cfg.Signer.JWKS(), tok); claims["aud"] != "https://backend.internal" {
		t.Errorf("aud %v, want the configured audience", claims["aud"])
	}
}

func TestJWKSEndpointServesThePublicKeyOnly(t *testing.T) {
	s := newTestSigner(t)
	rec := httptest.NewRecorder()
	s.serveJWKS(rec, httptest.NewRequest(http.MethodGet, "/oauth2/jwks", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/jwk-set+json" || rec.Body.String() != string(s.JWKS()) {
		t.Errorf("GET: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = httptest.NewRecorder()
	s.serveJWKS(rec, httptest.NewRequest(http.MethodPost, "/oauth2/jwks", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestIdentityAssertionIsReusedWhileFreshPerSessionAndSite(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := &Gateway{cfg: Config{Signer: newTestSigner(t)}, now: func() time.Time { return now },
		assertions: newTTLCache[string](maxCachedAssertions)}
	id := &Identity{Subject: "alice", Claims: map[string]any{"email": "alice@example.com"}, idToken: "id-token-1"}
	app := httptest.NewRequest(http.MethodGet, "http://app.example/", nil)
	first, err := g.identityAssertion(app, id)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := g.identityAssertion(app, id); again != first {
		t.Error("a second request of the same session signed a new assertion")
	}
	other := httptest.NewRequest(http.MethodGet, "http://other.example/", nil)
	if tok, _ := g.identityAssertion(other, id); tok == first {
		t.Error("another site got the first site's assertion (its iss and aud are wrong there)")
	}
	refreshed := &Identity{Subject: "alice", Claims: map[string]any{"email": "new@example.com"}, idToken: "id-token-2"}
	if tok, _ := g.identityAssertion(app, refreshed); tok == first {
		t.Error("a session with a new ID token (new claims) got the old assertion")
	}
	now = now.Add(assertionTTL / 2)
	tok, _ := g.identityAssertion(app, id)
	if tok == first {
		t.Fatal("an assertion past half its lifetime was reused")
	}
	if _, claims := verifyWithJWKS(t, g.cfg.Signer.JWKS(), tok); claims["exp"] != float64(now.Add(assertionTTL).Unix()) {
		t.Errorf("fresh assertion exp %v, want now+%s", claims["exp"], assertionTTL)
	}
}
