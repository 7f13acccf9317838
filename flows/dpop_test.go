package flows

// DPoP (RFC 9449) at the embedded server: tokens bound at the token
// endpoint for every grant, refresh tokens of public clients bound too,
// the binding shown by introspection and enforced at userinfo.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/dpop"
)

// dpopKey is a client's DPoP key pair; proofs are made at the server's
// clock.
type dpopKey struct {
	env *testEnv
	key *ecdsa.PrivateKey
	jkt string
}

func (e *testEnv) newDPoPKey() *dpopKey {
	e.tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.tb.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		e.tb.Fatal(err)
	}
	return &dpopKey{env: e, key: key, jkt: jkt}
}

// proofAt is a proof for method and the URL of path, carrying ath when
// accessToken is set, made at iat.
func (k *dpopKey) proofAt(method, path, accessToken string, iat time.Time) string {
	k.env.tb.Helper()
	p, err := dpop.NewProofAt(k.key, method, k.env.url(path), accessToken, "", iat)
	if err != nil {
		k.env.tb.Fatal(err)
	}
	return p
}

func (k *dpopKey) proof(method, path, accessToken string) string {
	return k.proofAt(method, path, accessToken, k.env.clock.Now())
}

// tokenProof is a proof for a token request.
func (k *dpopKey) tokenProof() string { return k.proof(http.MethodPost, PathToken, "") }

// dpopToken posts to the token endpoint as c with the given DPoP headers.
func (e *testEnv) dpopToken(c clientCred, form url.Values, proofs ...string) *response {
	e.tb.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = append([]string(nil), v...)
	}
	h := c.apply(f)
	for _, p := range proofs {
		h.Add(dpop.HeaderName, p)
	}
	return e.postForm(PathToken, f, h)
}

// dpopTokenOK is dpopToken requiring a 200.
func (e *testEnv) dpopTokenOK(c clientCred, form url.Values, proofs ...string) *tokenResult {
	e.tb.Helper()
	res := e.dpopToken(c, form, proofs...)
	if res.Status != http.StatusOK {
		e.tb.Fatalf("DPoP token request %v as %s: %d %s", form, c.id, res.Status, res.Body)
	}
	m := res.JSON(e.tb)
	tr := &tokenResult{raw: res}
	tr.AccessToken, _ = m["access_token"].(string)
	tr.TokenType, _ = m["token_type"].(string)
	tr.RefreshToken, _ = m["refresh_token"].(string)
	tr.IDToken, _ = m["id_token"].(string)
	tr.Scope, _ = m["scope"].(string)
	return tr
}

func codeForm(code, redirect, verifier string) url.Values {
	return url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {rt}}
}

// cnfJKT reads cnf.jkt from JWT claims or an introspection response.
func cnfJKT(m map[string]any) string {
	cnf, _ := m["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// TestDPoPBindsTheAccessTokenOfEveryGrant: RFC 9449 §5 and §6.1 — a token
// request with a valid proof gets token_type DPoP and a JWT whose cnf.jkt
// is the proof key's thumbprint, whatever the grant.
func TestDPoPBindsTheAccessTokenOfEveryGrant(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	key := env.newDPoPKey()

	cases := []struct {
		name  string
		issue func(t *testing.T) *tokenResult
	}{
		{"authorization_code, confidential client", func(t *testing.T) *tokenResult {
			p := newAuthRequest(webappID, webappRedirect, "openid offline_access read:items")
			code := b.obtainCode(p, "alice", alicePassword)
			return env.dpopTokenOK(webappBasic, codeForm(code, webappRedirect, p.Verifier), key.tokenProof())
		}},
		{"authorization_code, public client", func(t *testing.T) *tokenResult {
			p := newAuthRequest(spaID, spaRedirect, "openid offline_access")
			code := b.obtainCode(p, "alice", alicePassword)
			return env.dpopTokenOK(spaPublic, codeForm(code, spaRedirect, p.Verifier), key.tokenProof())
		}},
		{"refresh_token", func(t *testing.T) *tokenResult {
			first, _ := env.webappTokens(b, "openid offline_access")
			return env.dpopTokenOK(webappBasic, refreshForm(first.RefreshToken), key.tokenProof())
		}},
		{"client_credentials", func(t *testing.T) *tokenResult {
			return env.dpopTokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}}, key.tokenProof())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.issue(t)
			if tr.TokenType != "DPoP" {
				t.Errorf("token_type %q, want DPoP", tr.TokenType)
			}
			_, claims := env.verifyJWT(tr.AccessToken)
			if got := cnfJKT(claims); got != key.jkt {
				t.Errorf("access token cnf.jkt %q, want the proof key's %q", got, key.jkt)
			}
			if info := env.introspect(tr.AccessToken); cnfJKT(info) != key.jkt || info["token_type"] != "DPoP" {
				t.Errorf("introspection of the bound JWT: %v", info)
			}
			if tr.IDToken != "" {
				if _, id := env.verifyJWT(tr.IDToken); id["cnf"] != nil {
					t.Errorf("the ID token carries cnf: %v", id["cnf"])
				}
			}
		})
	}
	t.Run("without a proof the token stays Bearer", func(t *testing.T) {
		tr := env.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}})
		_, claims := env.verifyJWT(tr.AccessToken)
		if tr.TokenType != "Bearer" || claims["cnf"] != nil {
			t.Errorf("token_type %s, cnf %v", tr.TokenType, claims["cnf"])
		}
	})
}

// TestTokenEndpointRefusesInvalidDPoPProofs: RFC 9449 §5 — "If the DPoP
// proof is invalid, the authorization server issues an error response ...
// with invalid_dpop_proof".
func TestTokenEndpointRefusesInvalidDPoPProofs(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	key, other := env.newDPoPKey(), env.newDPoPKey()
	cc := url.Values{"grant_type": {GrantClientCredentials}}
	replayed := key.tokenProof()
	env.dpopTokenOK(backendBasic, cc, replayed)

	cases := []struct {
		name   string
		proofs []string
	}{
		{"not a JWT", []string{"not-a-jwt"}},
		{"empty", []string{""}},
		{"proof for userinfo", []string{key.proof(http.MethodPost, PathUserinfo, "")}},
		{"proof for another host", []string{mustProof(t, key, http.MethodPost, "https://evil.example.com"+PathToken)}},
		{"proof for GET", []string{key.proof(http.MethodGet, PathToken, "")}},
		{"stale proof", []string{key.proofAt(http.MethodPost, PathToken, "", env.clock.Now().Add(-10*time.Minute))}},
		{"proof from the future", []string{key.proofAt(http.MethodPost, PathToken, "", env.clock.Now().Add(10*time.Minute))}},
		{"replayed proof", []string{replayed}},
		{"two DPoP headers", []string{key.tokenProof(), other.tokenProof()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, env.dpopToken(backendBasic, cc, tc.proofs...), http.StatusBadRequest, "invalid_dpop_proof")
		})
	}
	t.Run("a proof with ath is accepted at the token endpoint", func(t *testing.T) {
		env.dpopTokenOK(backendBasic, cc, key.proof(http.MethodPost, PathToken, "some access token"))
	})
	t.Run("an invalid proof does not use up the code", func(t *testing.T) {
		b := env.newBrowser()
		p := newAuthRequest(webappID, webappRedirect, "openid")
		code := b.obtainCode(p, "alice", alicePassword)
		wantOAuthError(t, env.dpopToken(webappBasic, codeForm(code, webappRedirect, p.Verifier), "garbage"), http.StatusBadRequest, "invalid_dpop_proof")
		env.dpopTokenOK(webappBasic, codeForm(code, webappRedirect, p.Verifier), key.tokenProof())
	})
}

func mustProof(t *testing.T, k *dpopKey, method, target string) string {
	t.Helper()
	p, err := dpop.NewProofAt(k.key, method, target, "", "", k.env.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPublicClientRefreshTokenIsBoundToTheDPoPKey: RFC 9449 §5 — a public
// client must refresh with a proof by the key it got the refresh token
// with; a confidential client's refresh token is not bound.
func TestPublicClientRefreshTokenIsBoundToTheDPoPKey(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	key, other := env.newDPoPKey(), env.newDPoPKey()
	spaCode := func() (string, string) {
		p := newAuthRequest(spaID, spaRedirect, "openid offline_access")
		return b.obtainCode(p, "alice", alicePassword), p.Verifier
	}

	t.Run("public client", func(t *testing.T) {
		code, verifier := spaCode()
		first := env.dpopTokenOK(spaPublic, codeForm(code, spaRedirect, verifier), key.tokenProof())
		if first.RefreshToken == "" {
			t.Fatal("no refresh token")
		}
		cases := []struct {
			name   string
			proofs []string
		}{
			{"proof by another key", []string{other.tokenProof()}},
			{"no proof", nil},
		}
		for _, tc := range cases {
			wantOAuthError(t, env.dpopToken(spaPublic, refreshForm(first.RefreshToken), tc.proofs...), http.StatusBadRequest, "invalid_grant")
		}
		// The refused attempts did not use the token up, nor revoke it.
		second := env.dpopTokenOK(spaPublic, refreshForm(first.RefreshToken), key.tokenProof())
		if second.TokenType != "DPoP" {
			t.Errorf("refreshed token_type %s", second.TokenType)
		}
		// The rotated refresh token is bound to the same key.
		wantOAuthError(t, env.dpopToken(spaPublic, refreshForm(second.RefreshToken), other.tokenProof()), http.StatusBadRequest, "invalid_grant")
		env.dpopTokenOK(spaPublic, refreshForm(second.RefreshToken), key.tokenProof())
	})
	t.Run("public client that starts using DPoP at a refresh", func(t *testing.T) {
		code, verifier := spaCode()
		bearer := env.redeemOK(spaPublic, code, spaRedirect, verifier)
		bound := env.dpopTokenOK(spaPublic, refreshForm(bearer.RefreshToken), key.tokenProof())
		wantOAuthError(t, env.refresh(spaPublic, bound.RefreshToken), http.StatusBadRequest, "invalid_grant")
		env.dpopTokenOK(spaPublic, refreshForm(bound.RefreshToken), key.tokenProof())
	})
	t.Run("confidential client", func(t *testing.T) {
		p := newAuthRequest(webappID, webappRedirect, "openid offline_access")
		code := b.obtainCode(p, "alice", alicePassword)
		first := env.dpopTokenOK(webappBasic, codeForm(code, webappRedirect, p.Verifier), key.tokenProof())
		second := env.dpopTokenOK(webappBasic, refreshForm(first.RefreshToken), other.tokenProof())
		if _, claims := env.verifyJWT(second.AccessToken); cnfJKT(claims) != other.jkt {
			t.Errorf("refreshed access token bound to %q, want the new proof's key", cnfJKT(claims))
		}
		third := env.tokenOK(webappBasic, refreshForm(second.RefreshToken))
		if third.TokenType != "Bearer" {
			t.Errorf("refresh without a proof: token_type %s, want Bearer", third.TokenType)
		}
	})
}

// TestIntrospectionShowsTheDPoPBindingOfAnOpaqueToken: RFC 9449 §6.2.
func TestIntrospectionShowsTheDPoPBindingOfAnOpaqueToken(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	key := env.newDPoPKey()
	p := newAuthRequest(webappID, webappRedirect, "openid offline_access read:opaque")
	p.Set("audience", opaqueAPI)
	code := b.obtainCode(p, "alice", alicePassword)
	tr := env.dpopTokenOK(webappBasic, codeForm(code, webappRedirect, p.Verifier), key.tokenProof())
	if strings.Contains(tr.AccessToken, ".") || tr.TokenType != "DPoP" {
		t.Fatalf("want a bound opaque token, got %q (%s)", tr.AccessToken, tr.TokenType)
	}
	info := env.introspect(tr.AccessToken)
	if info["active"] != true || cnfJKT(info) != key.jkt || info["token_type"] != "DPoP" {
		t.Errorf("introspection of the bound opaque token: %v", info)
	}
	inProcess, err := env.srv.IntrospectAccessToken(context.Background(), tr.AccessToken)
	if err != nil || cnfJKT(inProcess) != key.jkt || inProcess["token_type"] != "DPoP" {
		t.Errorf("in-process introspection: %v, %v", inProcess, err)
	}
	// The confidential client's refresh token is not bound.
	if rt := env.introspect(tr.RefreshToken); rt["cnf"] != nil || rt["token_type"] != "refresh_token" {
		t.Errorf("refresh token introspection: %v", rt)
	}
	// An unbound opaque token shows no binding.
	p = newAuthRequest(webappID, webappRedirect, "openid read:opaque")
	p.Set("audience", opaqueAPI)
	plain := env.redeemOK(webappBasic, b.obtainCode(p, "alice", alicePassword), webappRedirect, p.Verifier)
	if info := env.introspect(plain.AccessToken); info["cnf"] != nil || info["token_type"] != "Bearer" {
		t.Errorf("unbound opaque token: %v", info)
	}
}

// userinfoWith calls userinfo with an Authorization header and DPoP
// headers.
func (e *testEnv) userinfoWith(method, authz string, proofs ...string) *response {
	e.tb.Helper()
	r := httptestRequest(method, e.url(PathUserinfo))
	r.Header.Set("Authorization", authz)
	for _, p := range proofs {
		r.Header.Add(dpop.HeaderName, p)
	}
	return e.serve(r)
}

// TestUserinfoEnforcesTheDPoPBinding: RFC 9449 §7 — a bound token works
// only under the DPoP scheme with a valid proof by its key, carrying its
// hash; never as a Bearer token.
func TestUserinfoEnforcesTheDPoPBinding(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	key, other := env.newDPoPKey(), env.newDPoPKey()
	bound := map[string]string{}
	p := newAuthRequest(webappID, webappRedirect, "openid email")
	bound["jwt"] = env.dpopTokenOK(webappBasic, codeForm(b.obtainCode(p, "alice", alicePassword), webappRedirect, p.Verifier), key.tokenProof()).AccessToken
	p = newAuthRequest(webappID, webappRedirect, "openid email read:opaque")
	p.Set("audience", opaqueAPI)
	bound["opaque"] = env.dpopTokenOK(webappBasic, codeForm(b.obtainCode(p, "alice", alicePassword), webappRedirect, p.Verifier), key.tokenProof()).AccessToken

	for kind, tok := range bound {
		t.Run(kind, func(t *testing.T) {
			good := key.proof(http.MethodGet, PathUserinfo, tok)
			res := env.userinfoWith(http.MethodGet, "DPoP "+tok, good)
			if res.Status != http.StatusOK || res.JSON(t)["email"] != "alice@example.com" {
				t.Fatalf("DPoP presentation with a valid proof: %d %s", res.Status, res.Body)
			}
			if res := env.userinfoWith(http.MethodPost, "dpop "+tok, key.proof(http.MethodPost, PathUserinfo, tok)); res.Status != http.StatusOK {
				t.Errorf("POST with the scheme in lower case: %d %s", res.Status, res.Body)
			}
			cases := []struct {
				name   string
				authz  string
				proofs []string
				code   string
			}{
				{"presented as a Bearer token", "Bearer " + tok, nil, "invalid_token"},
				{"presented as a Bearer token with a valid proof", "Bearer " + tok, []string{key.proof(http.MethodGet, PathUserinfo, tok)}, "invalid_token"},
				{"no proof", "DPoP " + tok, nil, "invalid_dpop_proof"},
				{"ath of another token", "DPoP " + tok, []string{key.proof(http.MethodGet, PathUserinfo, "another token")}, "invalid_dpop_proof"},
				{"no ath", "DPoP " + tok, []string{key.proof(http.MethodGet, PathUserinfo, "")}, "invalid_dpop_proof"},
				{"proof by another key", "DPoP " + tok, []string{other.proof(http.MethodGet, PathUserinfo, tok)}, "invalid_token"},
				{"proof for the token endpoint", "DPoP " + tok, []string{key.proof(http.MethodGet, PathToken, tok)}, "invalid_dpop_proof"},
				{"proof for POST", "DPoP " + tok, []string{key.proof(http.MethodPost, PathUserinfo, tok)}, "invalid_dpop_proof"},
				{"replayed proof", "DPoP " + tok, []string{good}, "invalid_dpop_proof"},
				{"two proofs", "DPoP " + tok, []string{key.proof(http.MethodGet, PathUserinfo, tok), key.proof(http.MethodGet, PathUserinfo, tok)}, "invalid_dpop_proof"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					res := env.userinfoWith(http.MethodGet, tc.authz, tc.proofs...)
					wantOAuthError(t, res, http.StatusUnauthorized, tc.code)
					chal := res.Header.Get("WWW-Authenticate")
					if !strings.HasPrefix(chal, "DPoP ") || !strings.Contains(chal, `error="`+tc.code+`"`) || !strings.Contains(chal, `algs="`) {
						t.Errorf("WWW-Authenticate %q, want a DPoP challenge with error=%q", chal, tc.code)
					}
					if strings.Contains(res.Body, "alice@example.com") {
						t.Error("a refused request leaks claims")
					}
				})
			}
			t.Run("in the form body (a Bearer presentation)", func(t *testing.T) {
				r := httptestRequestBody(http.MethodPost, env.url(PathUserinfo), url.Values{"access_token": {tok}}.Encode())
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				wantOAuthError(t, env.serve(r), http.StatusUnauthorized, "invalid_token")
			})
		})
	}
	t.Run("an unbound token keeps working as Bearer and is refused as DPoP", func(t *testing.T) {
		tr, _ := env.webappTokens(b, "openid")
		if res := env.userinfo(tr.AccessToken); res.Status != http.StatusOK {
			t.Errorf("Bearer: %d %s", res.Status, res.Body)
		}
		res := env.userinfoWith(http.MethodGet, "DPoP "+tr.AccessToken, key.proof(http.MethodGet, PathUserinfo, tr.AccessToken))
		wantOAuthError(t, res, http.StatusUnauthorized, "invalid_token")
	})
	t.Run("browser apps can read the challenge", func(t *testing.T) {
		r := httptestRequest(http.MethodGet, env.url(PathUserinfo))
		r.Header.Set("Origin", "https://spa.example.com")
		r.Header.Set("Authorization", "Bearer "+bound["jwt"])
		res := env.serve(r)
		if exp := res.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "WWW-Authenticate") {
			t.Errorf("Access-Control-Expose-Headers %q", exp)
		}
	})
}

func TestDiscoveryAdvertisesDPoPAlgorithms(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	algs := toStrings(env.get(PathDiscovery, nil, nil).JSON(t)["dpop_signing_alg_values_supported"])
	if !slices.Contains(algs, "ES256") || !slices.Contains(algs, "EdDSA") {
		t.Errorf("dpop_signing_alg_values_supported %v", algs)
	}
	for _, a := range algs {
		if a == "none" || strings.HasPrefix(a, "HS") {
			t.Errorf("dpop_signing_alg_values_supported offers %s", a)
		}
	}
}
