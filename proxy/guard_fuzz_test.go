package proxy_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/proxy"
)

// The fuzz targets run their seeds with every `go test`; for longer:
//
//	go test -run '^$' -fuzz FuzzVerifyJWT -fuzztime 1m ./proxy/
//	go test -run '^$' -fuzz FuzzGuardDPoPProof -fuzztime 1m ./proxy/
//	go test -run '^$' -fuzz FuzzParseAuthorization -fuzztime 1m ./proxy/

// guardAnswers are the statuses the guard may answer a client with.
var guardAnswers = []int{http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden}

// FuzzVerifyJWT sends arbitrary tokens through the JWT validation path
// (JWS and JWE): it must never panic or answer 500, and only the tokens
// the issuer signed may pass.
func FuzzVerifyJWT(f *testing.F) {
	e := newGuardEnv(f, withGuardConfig(func(c *proxy.GuardConfig) {
		c.ClientID, c.ClientSecret = "", "" // no introspection: JWTs only
		c.DecryptionKeys = []jose.JSONWebKey{{Key: rsaKey(), KeyID: "enc"}}
	}))
	valid := e.iss.mint(jwtSpec{})
	encrypted := encryptForFuzz(f, valid)
	now := e.clock.Now()
	seeds := []string{
		valid, encrypted,
		unsignedJWT("none", e.iss.accessClaims()),
		e.iss.mint(jwtSpec{key: attackerKey}),
		e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }}),
		e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["aud"] = 42 }}),
		e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["cnf"] = "x" }}),
		e.iss.mint(jwtSpec{key: attackerKey, embed: true}),
		"eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "a.b.c", "....", "a.b.c.d.e", "eyJ9.eyJ9.", strings.Repeat("a.", 2),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	accepted := []string{valid, encrypted}
	f.Fuzz(func(t *testing.T, token string) {
		r := apiRequest(http.MethodGet, "/", "")
		r.Header["Authorization"] = []string{"Bearer " + token}
		resp := e.do(r)
		if !slices.Contains(guardAnswers, resp.StatusCode) {
			t.Fatalf("status %d for token %q", resp.StatusCode, token)
		}
		if resp.StatusCode == http.StatusOK && !slices.Contains(accepted, token) {
			t.Fatalf("accepted a token the issuer did not sign: %q", token)
		}
	})
}

func encryptForFuzz(f *testing.F, jws string) string {
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: &rsaKey().PublicKey, KeyID: "enc"},
		(&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		f.Fatal(err)
	}
	obj, err := enc.Encrypt([]byte(jws))
	if err != nil {
		f.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// FuzzGuardDPoPProof sends a DPoP-bound token with arbitrary Authorization
// schemes and DPoP headers: never a panic or a 500, never a pass without a
// valid proof by the bound key.
func FuzzGuardDPoPProof(f *testing.F) {
	e := newGuardEnv(f, withGuardConfig(func(c *proxy.GuardConfig) { c.ClientID, c.ClientSecret = "", "" }))
	client := newDPoPClient(f)
	tok := e.iss.mint(boundTo(client))
	good := client.proof(f, http.MethodGet, apiOrigin+"/items", tok, "", e.clock.Now())
	for _, s := range []struct{ scheme, proof string }{
		{"DPoP", good}, {"DPoP", ""}, {"Bearer", good}, {"DPoP", "a.b.c"}, {"DPoP", good + "," + good},
		{"dpop", strings.Repeat("A", 9000)}, {"DPoP", "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.e30."},
	} {
		f.Add(s.scheme, s.proof)
	}
	f.Fuzz(func(t *testing.T, scheme, proof string) {
		r := apiRequest(http.MethodGet, "/items", "")
		r.Header["Authorization"] = []string{scheme + " " + tok}
		if proof != "" {
			r.Header["Dpop"] = []string{proof}
		}
		resp := e.do(r)
		if !slices.Contains(guardAnswers, resp.StatusCode) {
			t.Fatalf("status %d for %q / %q", resp.StatusCode, scheme, proof)
		}
		if resp.StatusCode == http.StatusOK && proof != good {
			t.Fatalf("accepted without the client's proof: %q / %q", scheme, proof)
		}
	})
}
