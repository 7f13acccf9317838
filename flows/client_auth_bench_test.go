package flows

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The cost private_key_jwt adds to a back-channel request, against
// client_secret_basic: run
//
//	go test -run '^$' -bench 'ClientAuth|ClientCredentialsToken' -benchmem ./flows/
//
// and subtract the client_secret_basic figure from the private_key_jwt
// one. Background runs meanwhile, so the off-request-path store writes of
// used jtis compete for the CPU as they would in production.
// BenchmarkES256Verify is the floor: the signature check alone, which
// depends on the CPU far more than anything else here.

// benchAssertionEnv is newAssertionEnv with Background running and the
// replay cache unbounded (the frozen clock never expires an entry, and a
// long -benchtime would otherwise fill it).
func benchAssertionEnv(b *testing.B) (*testEnv, *assertionFixture) {
	env, fx := newAssertionEnv(b)
	env.srv.assertions.used.limit = math.MaxInt
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.srv.Background(ctx, time.Hour)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return env, fx
}

// benchMethods are the client authentications compared. form returns the
// credentials of request i (assertions are signed before the timer
// starts) and header the HTTP Basic header, if any.
func benchMethods(b *testing.B, env *testEnv, fx *assertionFixture) []struct {
	name    string
	prepare func(n int) func(i int) (url.Values, http.Header)
} {
	basic := http.Header{}
	(&http.Request{Header: basic}).SetBasicAuth(backendID, backendSecret)
	// Clients send client_id with their assertion, as openid-client does.
	signed := func(clientID string, sign func() string) func(n int) func(i int) (url.Values, http.Header) {
		return func(n int) func(i int) (url.Values, http.Header) {
			assertions := make([]string, n)
			for i := range assertions {
				assertions[i] = sign()
			}
			return func(i int) (url.Values, http.Header) {
				return url.Values{"client_id": {clientID}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {assertions[i]}}, nil
			}
		}
	}
	return []struct {
		name    string
		prepare func(n int) func(i int) (url.Values, http.Header)
	}{
		{"client_secret_basic", func(int) func(int) (url.Values, http.Header) {
			return func(int) (url.Values, http.Header) { return url.Values{}, basic }
		}},
		{"private_key_jwt_ES256", signed(pkjwtID, func() string {
			return signAssertion(b, fx.key, jose.ES256, "k1", env.assertionClaims(pkjwtID))
		})},
		{"client_secret_jwt_HS256", signed(csjwtID, func() string {
			return signAssertion(b, []byte(csjwtSecret), jose.HS256, "", env.assertionClaims(csjwtID))
		})},
	}
}

// BenchmarkES256Verify measures go-jose verifying one ES256 assertion.
func BenchmarkES256Verify(b *testing.B) {
	env, fx := newAssertionEnv(b)
	tok, err := jwt.ParseSigned(fx.pkjwtAssertion(b, env), privateKeyJWTAlgs)
	if err != nil {
		b.Fatal(err)
	}
	var claims jwt.Claims
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := tok.Claims(&fx.key.PublicKey, &claims); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientAuthentication measures authenticateClient alone, on a
// request whose form is already parsed.
func BenchmarkClientAuthentication(b *testing.B) {
	env, fx := benchAssertionEnv(b)
	target, _ := url.Parse(env.url(PathToken))
	for _, m := range benchMethods(b, env, fx) {
		b.Run(m.name, func(b *testing.B) {
			creds := m.prepare(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				form, header := creds(i)
				r := (&http.Request{Method: http.MethodPost, URL: target, Header: header, PostForm: form}).WithContext(context.Background())
				if r.Header == nil {
					r.Header = http.Header{}
				}
				if _, err := env.srv.authenticateClient(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientCredentialsToken measures a whole client_credentials
// request through the handler: form parsing, client authentication and a
// signed (ES256) JWT access token.
func BenchmarkClientCredentialsToken(b *testing.B) {
	env, fx := benchAssertionEnv(b)
	for _, m := range benchMethods(b, env, fx) {
		b.Run(m.name, func(b *testing.B) {
			creds := m.prepare(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				form, header := creds(i)
				form.Set("grant_type", GrantClientCredentials)
				r := httptest.NewRequest(http.MethodPost, env.url(PathToken), strings.NewReader(form.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range header {
					r.Header[k] = v
				}
				rec := httptest.NewRecorder()
				env.srv.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
