package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/proxy"
)

// dpopClient is a client holding a DPoP key.
type dpopClient struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newDPoPClient(t testing.TB) *dpopClient {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(jose.JSONWebKey{Key: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{key: key, jkt: jkt}
}

// proof is a proof for method and url, bound to token, made at iat.
func (c *dpopClient) proof(t testing.TB, method, url, token, nonce string, iat time.Time) string {
	t.Helper()
	p, err := dpop.NewProofAt(c.key, method, url, token, nonce, iat)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// boundTo makes a token bound to the client's key.
func boundTo(c *dpopClient) jwtSpec {
	return jwtSpec{edit: func(claims map[string]any) { claims["cnf"] = map[string]any{"jkt": c.jkt} }}
}

func TestGuardChecksDPoPBoundTokens(t *testing.T) {
	e := newGuardEnv(t)
	client, thief := newDPoPClient(t), newDPoPClient(t)
	now := e.clock.Now()
	bound := e.iss.mint(boundTo(client))
	opaqueBound := e.iss.issueOpaque(func(i map[string]any) { i["cnf"] = map[string]any{"jkt": client.jkt} })
	unbound := e.iss.mint(jwtSpec{})
	const target = apiOrigin + "/items"
	req := func(scheme, token string, proofs ...string) *http.Request {
		r := apiRequest(http.MethodGet, "/items", scheme+" "+token)
		if len(proofs) > 0 {
			r.Header["Dpop"] = proofs
		}
		return r
	}
	replayed := client.proof(t, http.MethodGet, target, bound, "", now)
	expectAllowed(t, e.do(req("DPoP", bound, replayed)))
	cases := []struct {
		name   string
		r      *http.Request
		scheme string // whose challenge carries the error
		code   string
	}{
		{"valid proof", req("DPoP", bound, client.proof(t, http.MethodGet, target, bound, "", now)), "", ""},
		{"introspected token bound by cnf.jkt", req("DPoP", opaqueBound, client.proof(t, http.MethodGet, target, opaqueBound, "", now)), "", ""},
		{"scheme name is case-insensitive", req("dpop", bound, client.proof(t, http.MethodGet, target, bound, "", now)), "", ""},
		{"bound token presented as Bearer", req("Bearer", bound, client.proof(t, http.MethodGet, target, bound, "", now)), "Bearer", "invalid_token"},
		{"introspected bound token as Bearer", req("Bearer", opaqueBound), "Bearer", "invalid_token"},
		{"no proof", req("DPoP", bound), "DPoP", "invalid_dpop_proof"},
		{"replayed proof", req("DPoP", bound, replayed), "DPoP", "invalid_dpop_proof"},
		{"proof by another key", req("DPoP", bound, thief.proof(t, http.MethodGet, target, bound, "", now)), "DPoP", "invalid_token"},
		{"wrong htu path", req("DPoP", bound, client.proof(t, http.MethodGet, apiOrigin+"/admin", bound, "", now)), "DPoP", "invalid_dpop_proof"},
		{"wrong htu host", req("DPoP", bound, client.proof(t, http.MethodGet, "https://evil.example/items", bound, "", now)), "DPoP", "invalid_dpop_proof"},
		{"wrong htu scheme", req("DPoP", bound, client.proof(t, http.MethodGet, "http://"+apiHost+"/items", bound, "", now)), "DPoP", "invalid_dpop_proof"},
		{"wrong htm", req("DPoP", bound, client.proof(t, http.MethodPost, target, bound, "", now)), "DPoP", "invalid_dpop_proof"},
		{"proof for another token (ath)", req("DPoP", bound, client.proof(t, http.MethodGet, target, unbound, "", now)), "DPoP", "invalid_dpop_proof"},
		{"proof without ath", req("DPoP", bound, client.proof(t, http.MethodGet, target, "", "", now)), "DPoP", "invalid_dpop_proof"},
		{"stale proof", req("DPoP", bound, client.proof(t, http.MethodGet, target, bound, "", now.Add(-10*time.Minute))), "DPoP", "invalid_dpop_proof"},
		{"proof from the future", req("DPoP", bound, client.proof(t, http.MethodGet, target, bound, "", now.Add(10*time.Minute))), "DPoP", "invalid_dpop_proof"},
		{"two DPoP headers", req("DPoP", bound, client.proof(t, http.MethodGet, target, bound, "", now), client.proof(t, http.MethodGet, target, bound, "", now)), "DPoP", "invalid_dpop_proof"},
		{"malformed proof", req("DPoP", bound, "not.a.jwt"), "DPoP", "invalid_dpop_proof"},
		{"unbound token with the DPoP scheme", req("DPoP", unbound, client.proof(t, http.MethodGet, target, unbound, "", now)), "DPoP", "invalid_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(tc.r)
			if tc.code == "" {
				expectAllowed(t, resp)
				return
			}
			expectRefused(t, resp, http.StatusUnauthorized, tc.scheme, tc.code)
			if !strings.Contains(challengeOf(resp, "DPoP"), `algs="`) {
				t.Errorf("no DPoP challenge with algs: %q", resp.Header.Values("WWW-Authenticate"))
			}
		})
	}
	t.Run("the proof is not sent upstream", func(t *testing.T) {
		seen := expectAllowed(t, e.do(req("DPoP", bound, client.proof(t, http.MethodGet, target, bound, "", now))))
		if seen.Header.Get("Dpop") != "" || seen.Header.Get("Authorization") != "" {
			t.Errorf("upstream saw DPoP %q Authorization %q", seen.Header.Get("Dpop"), seen.Header.Get("Authorization"))
		}
	})
}

func TestGuardAsksForADPoPNonceWhenNoncesAreOn(t *testing.T) {
	env := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.DPoP = &dpop.Verifier{Nonces: dpop.NewNonceSource(0), Now: c.Now} // c.Now is the test clock
	}))
	client := newDPoPClient(t)
	tok := env.iss.mint(boundTo(client))
	send := func(nonce string) *http.Response {
		r := apiRequest(http.MethodGet, "/items", "DPoP "+tok)
		r.Header.Set("DPoP", client.proof(t, http.MethodGet, apiOrigin+"/items", tok, nonce, env.clock.Now()))
		return env.do(r)
	}
	resp := send("")
	nonce := resp.Header.Get("DPoP-Nonce")
	expectRefused(t, resp, http.StatusUnauthorized, "DPoP", "use_dpop_nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	expectAllowed(t, send(nonce))
}

func TestGuardRequireDPoPRefusesBearerTokens(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.RequireDPoP = true }))
	client := newDPoPClient(t)
	resp := e.bearer("/items", e.iss.mint(jwtSpec{}))
	expectRefused(t, resp, http.StatusUnauthorized, "DPoP", "invalid_token")
	if challengeOf(resp, "Bearer") != "" {
		t.Errorf("a Bearer challenge although only DPoP is accepted: %q", resp.Header.Values("WWW-Authenticate"))
	}
	tok := e.iss.mint(boundTo(client))
	r := apiRequest(http.MethodGet, "/items", "DPoP "+tok)
	r.Header.Set("DPoP", client.proof(t, http.MethodGet, apiOrigin+"/items", tok, "", e.clock.Now()))
	expectAllowed(t, e.do(r))
}

func TestGuardDPoPHTUIsThePublicURL(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.BaseURL = "https://public.example" }))
	client := newDPoPClient(t)
	tok := e.iss.mint(boundTo(client))
	for _, tc := range []struct {
		htu   string
		allow bool
	}{
		{"https://public.example/items", true},
		{apiOrigin + "/items", false},
	} {
		t.Run(tc.htu, func(t *testing.T) {
			r := apiRequest(http.MethodGet, "/items", "DPoP "+tok)
			r.Header.Set("X-Forwarded-Proto", "http") // never trusted
			r.Header.Set("DPoP", client.proof(t, http.MethodGet, tc.htu, tok, "", e.clock.Now()))
			if tc.allow {
				expectAllowed(t, e.do(r))
			} else {
				expectRefused(t, e.do(r), http.StatusUnauthorized, "DPoP", "invalid_dpop_proof")
			}
		})
	}
}

func TestGuardCertificateBoundTokensNeedTheirCertificate(t *testing.T) {
	e := newGuardEnv(t)
	der, _ := base64.StdEncoding.DecodeString(selfSignedCertB64(t, attackerKey))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	tok := e.iss.mint(jwtSpec{edit: func(c map[string]any) {
		c["cnf"] = map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}
	}})
	r := apiRequest(http.MethodGet, "/", "Bearer "+tok)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	expectAllowed(t, e.do(r))
	expectRefused(t, e.bearer("/", tok), http.StatusUnauthorized, "Bearer", "invalid_token")
}
