package flows

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Where a client_credentials token's time goes, for the token_vs_node
// comparison (tests/bench): run
//
//	go test -run '^$' -bench 'ClientCredentialsTokenResource|ClientCredentialsParts|ES256SignFloor' -benchmem -cpu 1 ./flows/
//
// -cpu 1 as the pinned server runs (GOMAXPROCS 1), so that garbage
// collection is paid on the request's own CPU. Each benchmark also reports
// cpu-ns/op, the process's user+system CPU time per operation (getrusage),
// which a machine shared with other work inflates less than ns/op (wall
// time). Add -cpuprofile and -memprofile to see the stages from inside.

// vsNodeForm is token_vs_node's request body: the API named as an RFC 8707
// resource, and the one scope the client has for it.
var vsNodeForm = url.Values{"grant_type": {GrantClientCredentials}, "resource": {apiID1}, "scope": {"read:items"}}.Encode()

// BenchmarkClientCredentialsTokenResource measures the token_vs_node
// request through the handler (client_secret_basic, an ES256 JWT access
// token), and the test harness alone (building the request and the
// recorder) to subtract from it.
func BenchmarkClientCredentialsTokenResource(b *testing.B) {
	env := newTestServer(b)
	basic := basicHeader(backendBasic)
	newReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, env.url(PathToken), strings.NewReader(vsNodeForm))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", basic)
		return r
	}
	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			rec := httptest.NewRecorder()
			env.srv.ServeHTTP(rec, newReq())
			if rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
	b.Run("harness_only", func(b *testing.B) {
		noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			rec := httptest.NewRecorder()
			noop.ServeHTTP(rec, newReq())
		}
	})
}

// discardWriter is a ResponseWriter that keeps nothing but its header map.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkClientCredentialsParts measures the stages of one
// client_credentials token alone, in the order the handler runs them.
func BenchmarkClientCredentialsParts(b *testing.B) {
	env := newTestServer(b)
	ctx := context.Background()
	basic := basicHeader(backendBasic)
	target, _ := url.Parse(env.url(PathToken))
	client, err := env.store.GetClient(ctx, backendID)
	if err != nil {
		b.Fatal(err)
	}
	api, err := env.store.GetAPI(ctx, apiID1)
	if err != nil {
		b.Fatal(err)
	}
	form, _ := url.ParseQuery(vsNodeForm)
	scopes := []string{"read:items"}

	b.Run("parse_form", func(b *testing.B) {
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			r := &http.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
				Body: readCloser{strings.NewReader(vsNodeForm)}}
			if err := parsePostForm(w, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticate_client", func(b *testing.B) {
		// GetClient (a bbolt read transaction and the JSON decoding of the
		// client record) and the SHA-256 of the secret.
		r := (&http.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Authorization": {basic}}, PostForm: form}).WithContext(ctx)
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := env.srv.authenticateClient(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store_get_client", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := env.store.GetClient(ctx, backendID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store_get_api", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := env.store.GetAPI(ctx, apiID1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("secret_digest_compare", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if !equalDigest(backendSecret, client.SecretDigest) {
				b.Fatal("digest mismatch")
			}
		}
	})
	b.Run("grant_without_store", func(b *testing.B) {
		// clientCredentialsGrant.Grant less GetAPI: parse the scope, build
		// and sign the claims, the response struct.
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := parseScope("read:items"); err != nil {
				b.Fatal(err)
			}
			if _, err := env.srv.issue(ctx, issueParams{Client: client, Scopes: scopes, API: api}, nil, false, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keys_sign_access_claims", func(b *testing.B) {
		// keys.Manager.Sign alone: go-jose's builder and signer.
		now := time.Now()
		claims := accessClaims{Issuer: env.srv.issuer, Subject: backendID, Audience: []string{apiID1}, ClientID: backendID,
			Scope: "read:items", JTI: randomToken()[:22], IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix()}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := env.keys.Sign(claims, "at+jwt"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("random_jti", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			_ = randomToken()[:22]
		}
	})
	b.Run("write_json", func(b *testing.B) {
		resp := &TokenResponse{AccessToken: strings.Repeat("x", 400), TokenType: "Bearer", ExpiresIn: 3600, Scope: "read:items"}
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			clear(w.h)
			writeJSON(w, http.StatusOK, resp)
		}
	})
}

// readCloser adds a no-op Close to a reader.
type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// BenchmarkES256SignFloor is the floor of an ES256 JWT access token:
// the ECDSA P-256 signature alone (crypto/ecdsa, as go-jose calls it), and
// a minimal JWT — a header encoded once, the claims struct marshalled by
// encoding/json straight into base64url, SHA-256, ecdsa.Sign, r||s — to
// set against keys_sign_access_claims.
func BenchmarkES256SignFloor(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("payload"))
	b.Run("ecdsa_sign", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, _, err := ecdsa.Sign(rand.Reader, key, sum[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minimal_jwt", func(b *testing.B) {
		header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"0123456789abcdef","typ":"at+jwt"}`))
		now := time.Now()
		claims := accessClaims{Issuer: testIssuer, Subject: backendID, Audience: []string{apiID1}, ClientID: backendID,
			Scope: "read:items", JTI: randomToken()[:22], IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix()}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if tok := minimalJWT(b, key, header, &claims); strings.Count(tok, ".") != 2 {
				b.Fatal(tok)
			}
		}
	})
}

func minimalJWT(b *testing.B, key *ecdsa.PrivateKey, header string, claims *accessClaims) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		b.Fatal(err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(64))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sum := sha256.Sum256(buf)
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig[:])
	return string(buf)
}

// reportCPU starts counting the process's CPU time; the function it
// returns, deferred, reports it per operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// processCPU is the process's user+system CPU time so far (every thread:
// the garbage collector's too).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
