package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/proxy"
)

func TestGuardAcceptsAValidJWTAndSendsIdentityUpstream(t *testing.T) {
	e := newGuardEnv(t)
	r := apiRequest(http.MethodGet, "/items", "Bearer "+e.iss.mint(jwtSpec{}))
	r.Header.Set("X-Forwarded-User", "mallory")
	seen := expectAllowed(t, e.do(r))
	want := map[string]string{"X-Forwarded-User": "alice", "X-Forwarded-Client-Id": "cli", "X-Forwarded-Scope": "read:items write:items"}
	for h, v := range want {
		if got := seen.Header.Get(h); got != v {
			t.Errorf("upstream %s = %q, want %q", h, got, v)
		}
	}
	if got := seen.Header.Get("Authorization"); got != "" {
		t.Errorf("the upstream received the client's Authorization header %q", got)
	}
}

// attackerKey signs tokens the issuer never issued.
var attackerKey = func() *signingKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &signingKey{kid: "k1", alg: jose.ES256, priv: priv}
}()

// unsignedJWT is a JWT with alg none (RFC 7519 §6), built by hand: no
// library makes one.
func unsignedJWT(alg string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "at+jwt", "kid": "k1"})
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// guardHMACWithPublicKey is the algorithm-confusion attack: HS256 with the
// issuer's public key, in one of its encodings, as the HMAC secret.
func guardHMACWithPublicKey(t *testing.T, e *guardEnv, encoding string) string {
	t.Helper()
	pub := e.iss.key.priv.Public()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	switch encoding {
	case "der":
		secret = der
	case "pem":
		secret = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	case "jwk":
		secret, _ = json.Marshal(e.iss.key.public())
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(e.iss.accessClaims()).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// selfSignedCertB64 is a certificate for an x5c header.
func selfSignedCertB64(t *testing.T, key *signingKey) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.priv.Public(), key.priv)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func TestGuardRefusesForgedAndInvalidJWTs(t *testing.T) {
	e := newGuardEnv(t)
	now := e.clock.Now()
	claims := func(edit func(c map[string]any)) map[string]any {
		c := e.iss.accessClaims()
		edit(c)
		return c
	}
	cases := []struct {
		name  string
		token func() string
		desc  string // part of error_description
	}{
		{"alg none", func() string { return unsignedJWT("none", e.iss.accessClaims()) }, "accepted algorithm"},
		{"alg None", func() string { return unsignedJWT("None", e.iss.accessClaims()) }, "accepted algorithm"},
		{"HS256 signed with the public key (DER)", func() string { return guardHMACWithPublicKey(t, e, "der") }, "accepted algorithm"},
		{"HS256 signed with the public key (PEM)", func() string { return guardHMACWithPublicKey(t, e, "pem") }, "accepted algorithm"},
		{"HS256 signed with the public key (JWK)", func() string { return guardHMACWithPublicKey(t, e, "jwk") }, "accepted algorithm"},
		{"unknown kid", func() string {
			return e.iss.mint(jwtSpec{key: &signingKey{kid: "nope", alg: jose.ES256, priv: attackerKey.priv}})
		}, "signing key"},
		{"the issuer's kid, another key", func() string { return e.iss.mint(jwtSpec{key: attackerKey}) }, "signature"},
		{"no kid, signed by another key", func() string {
			return e.iss.mint(jwtSpec{key: &signingKey{alg: jose.ES256, priv: attackerKey.priv}})
		}, "signature"},
		{"payload altered after signing", func() string {
			parts := strings.Split(e.iss.mint(jwtSpec{}), ".")
			c, _ := json.Marshal(claims(func(c map[string]any) { c["sub"] = "admin" }))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + parts[2]
		}, "signature"},
		{"expired", func() string {
			return e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }})
		}, "expired"},
		{"not yet valid", func() string {
			return e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }})
		}, "not valid yet"},
		{"issued in the future", func() string {
			return e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() }})
		}, "future"},
		{"no exp", func() string { return e.iss.mint(jwtSpec{edit: func(c map[string]any) { delete(c, "exp") }}) }, "expiry"},
		{"wrong iss", func() string {
			return e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["iss"] = "https://evil.example" }})
		}, "issuer"},
		{"iss with a trailing slash", func() string {
			return e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["iss"] = e.iss.issuer + "/" }})
		}, "issuer"},
		{"wrong aud", func() string {
			return e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["aud"] = "https://other-api.example" }})
		}, "aud"},
		{"no aud", func() string { return e.iss.mint(jwtSpec{edit: func(c map[string]any) { delete(c, "aud") }}) }, "aud"},
		{"embedded jwk header", func() string { return e.iss.mint(jwtSpec{key: attackerKey, embed: true}) }, "jwk"},
		{"jku header", func() string {
			return e.iss.mint(jwtSpec{headers: map[string]any{"jku": "https://evil.example/jwks"}})
		}, "jku"},
		{"x5u header", func() string {
			return e.iss.mint(jwtSpec{headers: map[string]any{"x5u": "https://evil.example/cert.pem"}})
		}, "x5u"},
		{"x5c header", func() string {
			return e.iss.mint(jwtSpec{headers: map[string]any{"x5c": []string{selfSignedCertB64(t, attackerKey)}}})
		}, "x5c"},
		{"unknown critical header", func() string {
			return e.iss.mint(jwtSpec{headers: map[string]any{"crit": []string{"exp"}, "exp": 1}})
		}, ""},
		{"RS256 token claiming the EC key's kid", func() string {
			return e.iss.mint(jwtSpec{key: &signingKey{kid: "k1", alg: jose.RS256, priv: rsaKey()}})
		}, "signing key"},
		{"not a JWT at all", func() string { return "eyJhbGciOiJFUzI1NiJ9.e30.c2ln" }, ""},
		{"three empty parts", func() string { return ".." }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.bearer("/items", tc.token())
			desc := challengeOf(resp, "Bearer")
			expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
			if !strings.Contains(desc, tc.desc) {
				t.Errorf("challenge %q does not say why (%q)", desc, tc.desc)
			}
		})
	}
}

func TestGuardAllowsClockSkewWithinLeewayOnly(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.Leeway = 10 * time.Second }))
	now := e.clock.Now()
	cases := []struct {
		name  string
		edit  func(c map[string]any)
		allow bool
	}{
		{"expired 5s ago", func(c map[string]any) { c["exp"] = now.Add(-5 * time.Second).Unix() }, true},
		{"expired 15s ago", func(c map[string]any) { c["exp"] = now.Add(-15 * time.Second).Unix() }, false},
		{"nbf in 5s", func(c map[string]any) { c["nbf"] = now.Add(5 * time.Second).Unix() }, true},
		{"nbf in 15s", func(c map[string]any) { c["nbf"] = now.Add(15 * time.Second).Unix() }, false},
		{"iat in 5s", func(c map[string]any) { c["iat"] = now.Add(5 * time.Second).Unix() }, true},
		{"iat in 15s", func(c map[string]any) { c["iat"] = now.Add(15 * time.Second).Unix() }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.bearer("/", e.iss.mint(jwtSpec{edit: tc.edit}))
			if tc.allow {
				expectAllowed(t, resp)
			} else {
				expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
			}
		})
	}
}

func TestGuardCachedTokenIsRefusedOnceItExpires(t *testing.T) {
	e := newGuardEnv(t)
	tok := e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["exp"] = e.clock.Now().Add(30 * time.Second).Unix() }})
	expectAllowed(t, e.bearer("/", tok))
	e.clock.Advance(30*time.Second + 10*time.Second + time.Second) // past exp and the default leeway
	expectRefused(t, e.bearer("/", tok), http.StatusUnauthorized, "Bearer", "invalid_token")
}

func TestGuardAudienceIsOneOfTheConfigured(t *testing.T) {
	cases := []struct {
		name      string
		audiences []string
		any       bool
		aud       any
		allow     bool
	}{
		{"aud string matches", []string{apiAudience}, false, apiAudience, true},
		{"aud list contains one", []string{apiAudience}, false, []any{"https://other.example", apiAudience}, true},
		{"second configured audience", []string{"https://v1.example", apiAudience}, false, apiAudience, true},
		{"none of the configured", []string{"https://v1.example", "https://v2.example"}, false, []any{apiAudience}, false},
		{"aud list of others", []string{apiAudience}, false, []any{"https://a.example", "https://b.example"}, false},
		{"prefix is not a match", []string{apiAudience}, false, apiAudience + "/admin", false},
		{"any audience", nil, true, "https://whatever.example", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.Audiences, c.AnyAudience = tc.audiences, tc.any }))
			resp := e.bearer("/", e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["aud"] = tc.aud }}))
			if tc.allow {
				expectAllowed(t, resp)
			} else {
				expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
			}
		})
	}
}

func TestGuardRequiresScopesAllOfOrAnyOf(t *testing.T) {
	cases := []struct {
		name   string
		scopes []string
		any    bool
		token  map[string]any // scope claims of the token
		allow  bool
	}{
		{"all of, has all", []string{"read:items", "write:items"}, false, map[string]any{"scope": "write:items read:items"}, true},
		{"all of, misses one", []string{"read:items", "admin"}, false, map[string]any{"scope": "read:items write:items"}, false},
		{"any of, has one", []string{"admin", "write:items"}, true, map[string]any{"scope": "read:items write:items"}, true},
		{"any of, has none", []string{"admin", "root"}, true, map[string]any{"scope": "read:items"}, false},
		{"scp list", []string{"read:items"}, false, map[string]any{"scope": nil, "scp": []any{"read:items"}}, true},
		{"no scope claim", []string{"read:items"}, false, map[string]any{"scope": nil}, false},
		{"scope is not split on commas", []string{"read:items"}, false, map[string]any{"scope": "read:items,admin"}, false},
		{"prefix of a scope", []string{"read"}, false, map[string]any{"scope": "read:items"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.Scopes, c.AnyScope = tc.scopes, tc.any }))
			resp := e.bearer("/", e.iss.mint(jwtSpec{edit: func(c map[string]any) {
				for k, v := range tc.token {
					if v == nil {
						delete(c, k)
					} else {
						c[k] = v
					}
				}
			}}))
			if tc.allow {
				expectAllowed(t, resp)
				return
			}
			ch := challengeOf(resp, "Bearer")
			expectRefused(t, resp, http.StatusForbidden, "Bearer", "insufficient_scope")
			if want := `scope="` + strings.Join(tc.scopes, " ") + `"`; !strings.Contains(ch, want) {
				t.Errorf("challenge %q does not carry %s", ch, want)
			}
		})
	}
}

func TestGuardRequiresClaims(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.RequireClaims = map[string][]string{"groups": {"admins", "ops"}, "tenant": {"acme"}}
	}))
	cases := []struct {
		name   string
		claims map[string]any
		allow  bool
	}{
		{"both match", map[string]any{"groups": []any{"dev", "ops"}, "tenant": "acme"}, true},
		{"a group missing", map[string]any{"groups": []any{"dev"}, "tenant": "acme"}, false},
		{"tenant differs", map[string]any{"groups": []any{"admins"}, "tenant": "evil"}, false},
		{"claims absent", map[string]any{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.bearer("/", e.iss.mint(jwtSpec{edit: func(c map[string]any) {
				for k, v := range tc.claims {
					c[k] = v
				}
			}}))
			if tc.allow {
				expectAllowed(t, resp)
			} else {
				expectRefused(t, resp, http.StatusForbidden, "Bearer", "insufficient_scope")
			}
		})
	}
}

func TestGuardEnforcesATJWTTypeWhenConfigured(t *testing.T) {
	cases := []struct {
		typ     string
		require bool
		allow   bool
	}{
		{"at+jwt", true, true},
		{"application/at+jwt", true, true},
		{"AT+JWT", true, true},
		{"JWT", true, false},
		{"-", true, false},
		{"JWT", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.typ+map[bool]string{true: " required", false: " not required"}[tc.require], func(t *testing.T) {
			e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.RequireATJWT = tc.require }))
			resp := e.bearer("/", e.iss.mint(jwtSpec{typ: tc.typ}))
			if tc.allow {
				expectAllowed(t, resp)
			} else {
				expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
			}
		})
	}
}

func TestGuardAcceptsOnlyConfiguredOrAdvertisedAlgorithms(t *testing.T) {
	rsa := &signingKey{kid: "r1", alg: jose.RS256, priv: rsaKey()}
	publishBoth := func(fi *fakeIssuer) {
		fi.published = append(fi.published, rsa.public())
	}
	cases := []struct {
		name  string
		opts  []guardOption
		allow bool
	}{
		{"RS256 advertised", []guardOption{withIssuer(publishBoth)}, true},
		{"RS256 not advertised", []guardOption{withIssuer(func(fi *fakeIssuer) {
			publishBoth(fi)
			fi.meta["id_token_signing_alg_values_supported"] = []string{"ES256"}
		})}, false},
		{"only HS256 advertised: default RS256 and ES256", []guardOption{withIssuer(func(fi *fakeIssuer) {
			publishBoth(fi)
			fi.meta["id_token_signing_alg_values_supported"] = []string{"HS256"}
		})}, true},
		{"configured ES256 only", []guardOption{withIssuer(publishBoth),
			withGuardConfig(func(c *proxy.GuardConfig) { c.Algorithms = []string{"ES256"} })}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newGuardEnv(t, tc.opts...)
			resp := e.bearer("/", e.iss.mint(jwtSpec{key: rsa}))
			if tc.allow {
				expectAllowed(t, resp)
			} else {
				expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
			}
		})
	}
}

func TestGuardTokenWithoutKidNeedsASingleKeyOfItsAlg(t *testing.T) {
	noKid := func(fi *fakeIssuer) *signingKey { return &signingKey{alg: jose.ES256, priv: fi.key.priv} }
	t.Run("one EC key", func(t *testing.T) {
		e := newGuardEnv(t)
		expectAllowed(t, e.bearer("/", e.iss.mint(jwtSpec{key: noKid(e.iss)})))
	})
	t.Run("two EC keys", func(t *testing.T) {
		e := newGuardEnv(t, withIssuer(func(fi *fakeIssuer) {
			fi.published = append(fi.published, newECKey(t, "k2").public())
		}))
		expectRefused(t, e.bearer("/", e.iss.mint(jwtSpec{key: noKid(e.iss)})), http.StatusUnauthorized, "Bearer", "invalid_token")
	})
}

func TestNewGuardRefusesUnsafeConfiguration(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct {
		name string
		edit func(c *proxy.GuardConfig)
	}{
		{"HS256", func(c *proxy.GuardConfig) { c.Algorithms = []string{"ES256", "HS256"} }},
		{"none", func(c *proxy.GuardConfig) { c.Algorithms = []string{"none"} }},
		{"unknown algorithm", func(c *proxy.GuardConfig) { c.Algorithms = []string{"ES257"} }},
		{"no audience", func(c *proxy.GuardConfig) { c.Audiences = nil }},
		{"relative issuer", func(c *proxy.GuardConfig) { c.Issuer = "/issuer" }},
		{"symmetric decryption key", func(c *proxy.GuardConfig) {
			c.DecryptionKeys = []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef")}}
		}},
		{"public decryption key", func(c *proxy.GuardConfig) { c.DecryptionKeys = []jose.JSONWebKey{{Key: &ec.PublicKey}} }},
		{"RSA1_5 decryption", func(c *proxy.GuardConfig) {
			c.DecryptionKeys = []jose.JSONWebKey{{Key: rsaKey(), Algorithm: string(jose.RSA1_5)}}
		}},
		{"base URL with a path", func(c *proxy.GuardConfig) { c.BaseURL = "https://api.example/v1" }},
		{"claim header Authorization", func(c *proxy.GuardConfig) { c.Headers = map[string]string{"Authorization": "sub"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := proxy.GuardConfig{Issuer: "https://issuer.example", Audiences: []string{apiAudience}}
			tc.edit(&cfg)
			if g, err := proxy.NewGuard(cfg); err == nil {
				g.Close()
				t.Fatal("NewGuard accepted the configuration")
			}
		})
	}
}
