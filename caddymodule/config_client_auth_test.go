package caddymodule

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/store"
	"github.com/portcullis-gw/portcullis/store/boltstore"
)

const (
	// hmacSecret is long enough for client_secret_jwt with HS256.
	hmacSecret = "a-client_secret_jwt-secret-of-40-bytes!!"
)

// testJWKS returns the JWK Set of a fresh P-256 key, public (or with the
// private key when private is set).
func testJWKS(t *testing.T, private bool) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: k, KeyID: "k1", Use: "sig"}
	if !private {
		jwk = jwk.Public()
	}
	raw, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCaddyfileClientAssertionOptions(t *testing.T) {
	app, err := parseOption(t, `portcullis {
		issuer https://auth.example.com
		client signer {
			token_endpoint_auth_method private_key_jwt
			token_endpoint_auth_signing_alg ES256
			jwks_file /etc/portcullis/signer.jwks.json
			api_access https://api.example.com read:items
		}
		client fetcher {
			token_endpoint_auth_method private_key_jwt
			jwks_uri https://fetcher.example.com/.well-known/jwks.json
			api_access https://api.example.com read:items
		}
		client mac {
			secret {env.MAC_SECRET}
			token_endpoint_auth_method client_secret_jwt
			token_endpoint_auth_signing_alg HS512
			api_access https://api.example.com read:items
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientConfig{
		{ID: "signer", TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256",
			JWKSFile: "/etc/portcullis/signer.jwks.json"},
		{ID: "fetcher", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: "https://fetcher.example.com/.well-known/jwks.json"},
		{ID: "mac", Secret: "{env.MAC_SECRET}", TokenEndpointAuthMethod: "client_secret_jwt", TokenEndpointAuthSigningAlg: "HS512"},
	}
	if len(app.Clients) != len(want) {
		t.Fatalf("%d clients, want %d", len(app.Clients), len(want))
	}
	for i, w := range want {
		got := app.Clients[i]
		if got.ID != w.ID || got.Secret != w.Secret || got.TokenEndpointAuthMethod != w.TokenEndpointAuthMethod ||
			got.TokenEndpointAuthSigningAlg != w.TokenEndpointAuthSigningAlg || got.JWKSFile != w.JWKSFile || got.JWKSURI != w.JWKSURI {
			t.Errorf("client %d = %+v, want %+v", i, got, w)
		}
	}
}

func TestCaddyfileClientAssertionErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name  string
		block string // the client block's lines, after `client c {` on line 2
		want  string
		line  int // the line the error names, 0 for any
	}{
		{"unknown auth method", "token_endpoint_auth_method tls_client_auth", "not supported", 3},
		{"unknown signing alg", "token_endpoint_auth_signing_alg RS1", "not supported", 3},
		{"none as signing alg", "token_endpoint_auth_signing_alg none", "not supported", 3},
		{"jwks_uri over plain http", "token_endpoint_auth_method private_key_jwt\n\t\tjwks_uri http://keys.example.com/jwks", "plain http", 4},
		{"inline jwks", "jwks {\"keys\":[]}", "use jwks_file", 3},
		{"jwks_file without a path", "jwks_file", "wrong argument count", 3},
		{"private_key_jwt without keys", "token_endpoint_auth_method private_key_jwt", "exactly one of jwks, jwks_file and jwks_uri", 0},
		{"private_key_jwt with two key sources", "token_endpoint_auth_method private_key_jwt\n\t\tjwks_file /k.json\n\t\tjwks_uri https://k.example/jwks",
			"exactly one of", 0},
		{"private_key_jwt with a secret", "token_endpoint_auth_method private_key_jwt\n\t\tsecret s\n\t\tjwks_file /k.json", "remove `secret`", 0},
		{"HMAC alg for private_key_jwt", "token_endpoint_auth_method private_key_jwt\n\t\tjwks_file /k.json\n\t\ttoken_endpoint_auth_signing_alg HS256",
			"does not fit private_key_jwt", 0},
		{"RSA alg for client_secret_jwt", "secret " + hmacSecret + "\n\t\ttoken_endpoint_auth_method client_secret_jwt\n\t\ttoken_endpoint_auth_signing_alg RS256",
			"does not fit client_secret_jwt", 0},
		{"client_secret_jwt with a short secret", "secret short\n\t\ttoken_endpoint_auth_method client_secret_jwt", "at least 32 bytes", 0},
		{"HS512 with a 40-byte secret", "secret " + hmacSecret + "\n\t\ttoken_endpoint_auth_method client_secret_jwt\n\t\ttoken_endpoint_auth_signing_alg HS512",
			"at least 64 bytes", 0},
		{"keys for a client_secret_basic client", "secret s\n\t\tjwks_file /k.json", "for private_key_jwt clients", 0},
		{"signing alg for a client_secret_basic client", "secret s\n\t\ttoken_endpoint_auth_signing_alg ES256", "applies only to", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := "portcullis {\n\tclient c {\n\t\t" + tc.block + "\n\t}\n}"
			_, err := parseOption(t, input)
			if err == nil {
				t.Fatalf("accepted invalid config:\n%s", input)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			where := "Testfile:"
			if tc.line > 0 {
				where += string(rune('0' + tc.line))
			}
			if !strings.Contains(err.Error(), where) {
				t.Errorf("error %q does not name %s", err, where)
			}
		})
	}
}

func TestClientRecordValidatesAssertionSettings(t *testing.T) {
	public := testJWKS(t, false)
	cases := []struct {
		name    string
		cfg     ClientConfig
		secret  string
		wantErr string
	}{
		{name: "inline public jwks", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt", JWKS: public}},
		{name: "jwks_file", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt", JWKSFile: writeFile(t, "k.json", public)}},
		{name: "jwks_uri on loopback", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: "http://127.0.0.1:9999/jwks"}},
		{name: "client_secret_jwt", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "client_secret_jwt"}, secret: hmacSecret},
		{name: "inline jwks with a private key", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt", JWKS: testJWKS(t, true)},
			wantErr: "contains a private key; register the public key only"},
		{name: "jwks_file with a private key", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt",
			JWKSFile: writeFile(t, "private.json", testJWKS(t, true))}, wantErr: "contains a private key"},
		{name: "missing jwks_file", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt",
			JWKSFile: filepath.Join(t.TempDir(), "nope.json")}, wantErr: "jwks_file"},
		{name: "jwks_file that is not JSON", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt",
			JWKSFile: writeFile(t, "bad.json", []byte("-----BEGIN PUBLIC KEY-----"))}, wantErr: "not a JSON object"},
		{name: "jwks and jwks_uri", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt", JWKS: public,
			JWKSURI: "https://k.example/jwks"}, wantErr: "exactly one of"},
		{name: "alg that no key fits", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "private_key_jwt", JWKS: public,
			TokenEndpointAuthSigningAlg: "ES384"}, wantErr: "no key can verify"},
		{name: "client_secret_jwt with 31 bytes", cfg: ClientConfig{ID: "c", TokenEndpointAuthMethod: "client_secret_jwt"},
			secret: strings.Repeat("s", 31), wantErr: "at least 32 bytes"},
		{name: "public client with keys", cfg: ClientConfig{ID: "c", Public: true, JWKS: public}, wantErr: "for private_key_jwt clients"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := tc.cfg.ClientRecord(tc.secret)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch rec.TokenEndpointAuthMethod {
			case flows.AuthMethodPrivateKeyJWT:
				if rec.SecretDigest != "" || rec.HMACSecret != "" {
					t.Error("a private_key_jwt client must not keep a secret")
				}
				if tc.cfg.JWKSFile != "" && !bytes.Equal(rec.JWKS, public) {
					t.Errorf("jwks_file not loaded into the record: %s", rec.JWKS)
				}
			case flows.AuthMethodSecretJWT:
				if rec.HMACSecret != tc.secret || rec.SecretDigest != flows.DigestSecret(tc.secret) {
					t.Error("a client_secret_jwt client keeps its secret as the HMAC key")
				}
			}
		})
	}
}

// adminDo serves one admin API request for the clients collection.
func adminDo(t *testing.T, a *App, method, id string, body any) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	r := httptest.NewRequest(method, "/portcullis/clients/"+id, &buf)
	w := httptest.NewRecorder()
	if err := a.adminClients(w, r, id); err != nil {
		t.Fatalf("%s %s: %v", method, id, err)
	}
	return w.Code, w.Body.Bytes()
}

func TestAdminNeverShowsTheHMACSecret(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &App{store: st}
	leaks := func(t *testing.T, body []byte, secrets ...string) {
		t.Helper()
		if bytes.Contains(body, []byte("hmac_secret")) || bytes.Contains(body, []byte("secret_digest")) {
			t.Errorf("the response shows secret fields: %s", body)
		}
		for _, s := range secrets {
			if bytes.Contains(body, []byte(s)) {
				t.Errorf("the response shows the secret: %s", body)
			}
		}
	}

	status, body := adminDo(t, a, http.MethodPost, "", map[string]any{
		"client_id": "mac", "secret": hmacSecret, "token_endpoint_auth_method": "client_secret_jwt"})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	leaks(t, body, hmacSecret)
	for _, id := range []string{"", "mac"} {
		_, body := adminDo(t, a, http.MethodGet, id, nil)
		leaks(t, body, hmacSecret)
	}

	// A PUT without a secret keeps the HMAC key.
	status, body = adminDo(t, a, http.MethodPut, "mac", map[string]any{"token_endpoint_auth_method": "client_secret_jwt"})
	if status != http.StatusOK {
		t.Fatalf("update: %d %s", status, body)
	}
	leaks(t, body, hmacSecret)
	if rec, err := st.GetClient(t.Context(), "mac"); err != nil || rec.HMACSecret != hmacSecret {
		t.Fatalf("the HMAC secret was not kept: %v", err)
	}

	// A generated client_secret_jwt secret is shown once, long enough for
	// HS512, and never again.
	status, body = adminDo(t, a, http.MethodPost, "", map[string]any{"client_id": "gen", "token_endpoint_auth_method": "client_secret_jwt"})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var created struct {
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(body, &created); err != nil || len(created.ClientSecret) < flows.MinHMACSecretBytes("HS512") {
		t.Fatalf("generated secret %q (%v)", created.ClientSecret, err)
	}
	_, body = adminDo(t, a, http.MethodGet, "gen", nil)
	leaks(t, body, created.ClientSecret)

	// private_key_jwt clients get no secret at all, and show their keys.
	jwks := testJWKS(t, false)
	status, body = adminDo(t, a, http.MethodPost, "", map[string]any{
		"client_id": "signer", "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(jwks)})
	if status != http.StatusCreated {
		t.Fatalf("create private_key_jwt: %d %s", status, body)
	}
	var view struct {
		ClientSecret string          `json:"client_secret"`
		JWKS         json.RawMessage `json:"jwks"`
	}
	if err := json.Unmarshal(body, &view); err != nil || view.ClientSecret != "" || len(view.JWKS) == 0 {
		t.Fatalf("private_key_jwt view %s (%v)", body, err)
	}
	var rec *store.Client
	if rec, err = st.GetClient(t.Context(), "signer"); err != nil || rec.SecretDigest != "" {
		t.Fatalf("private_key_jwt record %+v (%v)", rec, err)
	}
}

func TestAdminRefusesPrivateKeyMaterial(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &App{store: st}
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(map[string]any{
		"client_id": "signer", "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(testJWKS(t, true))})
	err = a.adminClients(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/portcullis/clients/", &buf), "")
	if err == nil || !strings.Contains(err.Error(), "contains a private key; register the public key only") {
		t.Fatalf("error %v, want the private key refused", err)
	}
}
