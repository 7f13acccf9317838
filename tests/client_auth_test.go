package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// clientAuthCaddyfile registers a private_key_jwt client (its public JWK
// Set in {{.Vars.JWKSFile}}) and a client_secret_jwt client, both for
// client credentials on one API.
const clientAuthCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		client signer {
			token_endpoint_auth_method private_key_jwt
			token_endpoint_auth_signing_alg ES256
			jwks_file {{.Vars.JWKSFile}}
			grant_types client_credentials
			api_access https://api.example.com read:items
		}
		client mac {
			secret {{.Vars.MACSecret}}
			token_endpoint_auth_method client_secret_jwt
			grant_types client_credentials
			api_access https://api.example.com read:items
		}
		api https://api.example.com {
			scopes read:items
			token_format jwt
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
`

const (
	signerID  = "signer"
	macID     = "mac"
	macSecret = "e2e-client-secret-jwt-secret-with-48-bytes-of-it"
)

// assertionSigner mints client assertions (RFC 7523) for one client.
type assertionSigner struct {
	clientID string
	signer   jose.Signer
}

func newAssertionSigner(t *testing.T, clientID string, key jose.SigningKey, kid string) *assertionSigner {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &assertionSigner{clientID: clientID, signer: s}
}

// mint returns a fresh assertion for audience aud.
func (a *assertionSigner) mint(t *testing.T, aud string) string {
	t.Helper()
	now := time.Now()
	jti := make([]byte, 16)
	rand.Read(jti)
	tok, err := jwt.Signed(a.signer).Claims(jwt.Claims{
		Issuer: a.clientID, Subject: a.clientID, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
		ID: base64.RawURLEncoding.EncodeToString(jti),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// form adds assertion to the parameters.
func assertionForm(params url.Values, clientID, assertion string) url.Values {
	f := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assertion}, "client_id": {clientID}}
	for k, v := range params {
		f[k] = v
	}
	return f
}

// signerKID is the kid of the private_key_jwt client's key.
const signerKID = "signer-1"

// startClientAuthGateway writes a fresh key's public JWK Set and starts
// the gateway; it returns the private_key_jwt client's key and the
// assertion signers of both clients.
func startClientAuthGateway(t *testing.T) (*Gateway, *ecdsa.PrivateKey, []*assertionSigner) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: signerKID, Use: "sig", Algorithm: "ES256"}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "signer.jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	g := StartGatewayVars(t, clientAuthCaddyfile, map[string]string{"JWKSFile": jwksFile, "MACSecret": macSecret})
	return g, key, []*assertionSigner{
		newAssertionSigner(t, signerID, jose.SigningKey{Algorithm: jose.ES256, Key: key}, signerKID),
		newAssertionSigner(t, macID, jose.SigningKey{Algorithm: jose.HS256, Key: []byte(macSecret)}, ""),
	}
}

func TestClientAssertionsEndToEnd(t *testing.T) {
	g, _, signers := startClientAuthGateway(t)
	d := g.Discover(t)
	for _, member := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
		"revocation_endpoint_auth_methods_supported"} {
		list, _ := d.Raw[member].([]any)
		if !slices.Contains(list, any("private_key_jwt")) || !slices.Contains(list, any("client_secret_jwt")) {
			t.Errorf("discovery %s = %v", member, d.Raw[member])
		}
	}
	for _, s := range signers {
		t.Run(s.clientID, func(t *testing.T) {
			first := s.mint(t, d.Issuer)
			resp, body := PostForm(t, d.TokenEndpoint, assertionForm(url.Values{"grant_type": {"client_credentials"}}, s.clientID, first), "", "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("client_credentials: %d %v", resp.StatusCode, body)
			}
			tok, _ := body["access_token"].(string)

			resp, body = PostForm(t, d.IntrospectionEndpoint, assertionForm(url.Values{"token": {tok}}, s.clientID, s.mint(t, d.TokenEndpoint)), "", "")
			if resp.StatusCode != http.StatusOK || body["active"] != true || body["client_id"] != s.clientID {
				t.Fatalf("introspection: %d %v", resp.StatusCode, body)
			}

			// The replayed assertion is refused, at any endpoint.
			for _, target := range []string{d.TokenEndpoint, d.IntrospectionEndpoint} {
				resp, body = PostForm(t, target, assertionForm(url.Values{"grant_type": {"client_credentials"}, "token": {tok}}, s.clientID, first), "", "")
				if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
					t.Fatalf("replay at %s: %d %v, want 401 invalid_client", target, resp.StatusCode, body)
				}
			}

			resp, _ = PostForm(t, d.RevocationEndpoint, assertionForm(url.Values{"token": {tok}}, s.clientID, s.mint(t, d.RevocationEndpoint)), "", "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revocation: %d", resp.StatusCode)
			}
			_, body = PostForm(t, d.IntrospectionEndpoint, assertionForm(url.Values{"token": {tok}}, s.clientID, s.mint(t, d.Issuer)), "", "")
			if body["active"] != false {
				t.Fatalf("revoked token introspects as %v", body)
			}
		})
	}

	t.Run("a secret by HTTP Basic is refused for a client_secret_jwt client", func(t *testing.T) {
		resp, body := PostForm(t, d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}}, macID, macSecret)
		if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Fatalf("%d %v, want 401 invalid_client", resp.StatusCode, body)
		}
	})

	t.Run("a used assertion stays used across a restart", func(t *testing.T) {
		s := signers[0]
		a := s.mint(t, d.Issuer)
		form := assertionForm(url.Values{"grant_type": {"client_credentials"}}, s.clientID, a)
		if resp, body := PostForm(t, d.TokenEndpoint, form, "", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use: %d %v", resp.StatusCode, body)
		}
		g.Restart(t)
		resp, body := PostForm(t, d.TokenEndpoint, form, "", "")
		if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Fatalf("replay after restart: %d %v, want 401 invalid_client", resp.StatusCode, body)
		}
	})
}

// TestPrivateKeyJWTClientRegisteredThroughAdminAPI: a client registered at
// run time with its public JWK Set (no secret at all) authenticates with
// signed assertions, as a deployment adds one without editing the config.
func TestPrivateKeyJWTClientRegisteredThroughAdminAPI(t *testing.T) {
	g, _, _ := startClientAuthGateway(t)
	d := g.Discover(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "late-1", Use: "sig", Algorithm: "ES256"}
	body, err := json.Marshal(map[string]any{
		"client_id": "late-signer", "token_endpoint_auth_method": "private_key_jwt",
		"jwks": jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}, "grant_types": []string{"client_credentials"},
		"api_access": map[string][]string{apiAudience: {"read:items"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, created := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodPost, g.AdminURL+"/portcullis/clients",
		strings.NewReader(string(body)), http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("registering through the admin API: %d %s", resp.StatusCode, created)
	}
	if strings.Contains(string(created), "client_secret") {
		t.Errorf("a private_key_jwt client was given a secret: %s", created)
	}
	s := newAssertionSigner(t, "late-signer", jose.SigningKey{Algorithm: jose.ES256, Key: key}, "late-1")
	resp2, tokens := PostForm(t, d.TokenEndpoint, assertionForm(url.Values{"grant_type": {"client_credentials"}}, s.clientID, s.mint(t, d.Issuer)), "", "")
	if resp2.StatusCode != http.StatusOK || tokens["access_token"] == nil {
		t.Fatalf("client_credentials with the registered key: %d %v", resp2.StatusCode, tokens)
	}
	// A key the client did not register is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := newAssertionSigner(t, "late-signer", jose.SigningKey{Algorithm: jose.ES256, Key: other}, "late-1")
	resp2, refused := PostForm(t, d.TokenEndpoint, assertionForm(url.Values{"grant_type": {"client_credentials"}}, forged.clientID, forged.mint(t, d.Issuer)), "", "")
	if resp2.StatusCode != http.StatusUnauthorized || refused["error"] != "invalid_client" {
		t.Fatalf("an unregistered key: %d %v, want 401 invalid_client", resp2.StatusCode, refused)
	}
}
