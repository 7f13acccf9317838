package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/proxy"
)

// encrypt makes a compact JWE of plaintext for key with go-jose.
func encrypt(t *testing.T, plaintext string, alg jose.KeyAlgorithm, enc jose.ContentEncryption, key any, kid, cty string) string {
	t.Helper()
	opts := &jose.EncrypterOptions{}
	if cty != "" {
		opts = opts.WithContentType(jose.ContentType(cty))
	}
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid, PBES2Count: 1000}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestGuardDecryptsJWEAccessTokensWithAllowListedAlgorithmsOnly(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv := rsaKey()
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.DecryptionKeys = []jose.JSONWebKey{
			{Key: rsaPriv, KeyID: "enc-rsa", Use: "enc"},
			{Key: ecKey, KeyID: "enc-ec"},
		}
	}))
	jws := e.iss.mint(jwtSpec{})
	secret := make([]byte, 32)
	rand.Read(secret)
	claimsJSON, _ := json.Marshal(e.iss.accessClaims())
	cases := []struct {
		name  string
		token func() string
		allow bool
	}{
		{"RSA-OAEP-256 + A256GCM", func() string {
			return encrypt(t, jws, jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "JWT")
		}, true},
		{"RSA-OAEP + A128CBC-HS256", func() string {
			return encrypt(t, jws, jose.RSA_OAEP, jose.A128CBC_HS256, &rsaPriv.PublicKey, "enc-rsa", "JWT")
		}, true},
		{"ECDH-ES+A256KW + A128GCM", func() string {
			return encrypt(t, jws, jose.ECDH_ES_A256KW, jose.A128GCM, &ecKey.PublicKey, "enc-ec", "JWT")
		}, true},
		{"ECDH-ES + A256GCM, no kid", func() string {
			return encrypt(t, jws, jose.ECDH_ES, jose.A256GCM, &ecKey.PublicKey, "", "JWT")
		}, true},
		{"no cty", func() string {
			return encrypt(t, jws, jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "")
		}, true},
		{"RSA1_5 (padding oracle)", func() string {
			return encrypt(t, jws, jose.RSA1_5, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "JWT")
		}, false},
		{"dir with a guessed key", func() string { return encrypt(t, jws, jose.DIRECT, jose.A256GCM, secret, "", "JWT") }, false},
		{"A256KW key wrap", func() string { return encrypt(t, jws, jose.A256KW, jose.A256GCM, secret, "", "JWT") }, false},
		{"PBES2", func() string {
			return encrypt(t, jws, jose.PBES2_HS256_A128KW, jose.A128GCM, "password", "", "JWT")
		}, false},
		{"claims encrypted but not signed", func() string {
			return encrypt(t, string(claimsJSON), jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "")
		}, false},
		{"nested JWS signed by another key", func() string {
			return encrypt(t, e.iss.mint(jwtSpec{key: attackerKey}), jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "JWT")
		}, false},
		{"nested JWS expired", func() string {
			expired := e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Hour).Unix() }})
			return encrypt(t, expired, jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "JWT")
		}, false},
		{"cty not JWT", func() string {
			return encrypt(t, jws, jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "enc-rsa", "json")
		}, false},
		{"encrypted to another key", func() string {
			return encrypt(t, jws, jose.ECDH_ES_A256KW, jose.A128GCM, &otherEC.PublicKey, "enc-ec", "JWT")
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.bearer("/", tc.token())
			if tc.allow {
				expectAllowed(t, resp)
			} else {
				expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
			}
		})
	}
	t.Run("a key's alg restricts it", func(t *testing.T) {
		e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
			c.DecryptionKeys = []jose.JSONWebKey{{Key: rsaPriv, Algorithm: string(jose.RSA_OAEP_256)}}
		}))
		jws := e.iss.mint(jwtSpec{})
		expectAllowed(t, e.bearer("/", encrypt(t, jws, jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "", "JWT")))
		expectRefused(t, e.bearer("/", encrypt(t, jws, jose.RSA_OAEP, jose.A256GCM, &rsaPriv.PublicKey, "", "JWT")),
			http.StatusUnauthorized, "Bearer", "invalid_token")
	})
	t.Run("without decryption keys", func(t *testing.T) {
		e := newGuardEnv(t)
		token := encrypt(t, e.iss.mint(jwtSpec{}), jose.RSA_OAEP_256, jose.A256GCM, &rsaPriv.PublicKey, "", "JWT")
		expectRefused(t, e.bearer("/", token), http.StatusUnauthorized, "Bearer", "invalid_token")
	})
}
