package dpop

// Every check of RFC 9449 §4.3 gets an attack that must fail it; the
// proofs are forged by hand (header, claims and signature each under the
// test's control), the good ones built with NewProof and go-jose.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The RFC 9449 examples: the token endpoint and resource of Figures 2 and
// 13, and the access token of Figure 6.
const (
	tokenURL    = "https://server.example.com/token"
	resourceURL = "https://resource.example.org/protectedresource"
	accessToken = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
)

// t0 is the frozen time of every test.
var t0 = time.Unix(1_700_000_000, 0)

var (
	keysOnce sync.Once
	p256Key  *ecdsa.PrivateKey
	p256Alt  *ecdsa.PrivateKey
	p384Key  *ecdsa.PrivateKey
	p521Key  *ecdsa.PrivateKey
	rsaKey   *rsa.PrivateKey
	rsa1024  *rsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func testKeys(tb testing.TB) {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		var e error
		p256Key, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		p256Alt, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		p384Key, e = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(e)
		p521Key, e = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		must(e)
		rsaKey, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		rsa1024, e = rsa.GenerateKey(rand.Reader, 1024)
		must(e)
		_, edKey, e = ed25519.GenerateKey(rand.Reader)
		must(e)
		if err != nil {
			panic(err)
		}
	})
}

func fixedClock() time.Time { return t0 }

func newVerifier() *Verifier { return &Verifier{Now: fixedClock} }

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// jwkJSON is key as a JWK JSON object (private members included when key
// is private).
func jwkJSON(tb testing.TB, key any) map[string]any {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// forged is a proof assembled by hand.
type forged struct {
	header map[string]any
	claims map[string]any
	sign   func(signingInput []byte) []byte
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b64(b)
}

func (f forged) compact(tb testing.TB) string {
	tb.Helper()
	input := b64JSON(tb, f.header) + "." + b64JSON(tb, f.claims)
	return input + "." + b64(f.sign([]byte(input)))
}

// esSigner signs as ECDSA with hash h, r||s at the key's size.
func esSigner(key *ecdsa.PrivateKey, h func() hash.Hash) func([]byte) []byte {
	return func(in []byte) []byte {
		d := h()
		d.Write(in)
		r, s, err := ecdsa.Sign(rand.Reader, key, d.Sum(nil))
		if err != nil {
			panic(err)
		}
		size := (key.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
}

func rs256Signer(key *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func randomJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return b64(b)
}

// goodForged is a valid ES256 proof for POST tokenURL at t0.
func goodForged(tb testing.TB) forged {
	tb.Helper()
	testKeys(tb)
	return forged{
		header: map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkJSON(tb, p256Key.Public())},
		claims: map[string]any{"jti": randomJTI(), "htm": "POST", "htu": tokenURL, "iat": t0.Unix()},
		sign:   esSigner(p256Key, sha256.New),
	}
}

func TestForgedBaselineIsAccepted(t *testing.T) {
	f := goodForged(t)
	p, err := newVerifier().Verify(f.compact(t), "POST", mustURL(t, tokenURL), "")
	if err != nil {
		t.Fatalf("the untampered forged proof is refused: %v", err)
	}
	want, _ := Thumbprint(jose.JSONWebKey{Key: p256Key.Public()})
	if p.JKT != want || p.JTI != f.claims["jti"] || !p.IssuedAt.Equal(t0) {
		t.Errorf("proof %+v, want jkt %s", p, want)
	}
}

// TestVerifyRefusesEachAttack tries one attack per check of RFC 9449 §4.3.
func TestVerifyRefusesEachAttack(t *testing.T) {
	testKeys(t)
	hs256 := func(in []byte) []byte {
		m := hmac.New(sha256.New, []byte("a shared secret of thirty-two bytes!"))
		m.Write(in)
		return m.Sum(nil)
	}
	cases := []struct {
		name   string
		mutate func(f *forged)
		raw    func(good string) string // replaces the proof entirely
		method string                   // default POST
		target string                   // default tokenURL
		token  string
		cfg    func(v *Verifier)
	}{
		// Point 2: a single, well-formed JWT.
		{name: "empty proof", raw: func(string) string { return "" }},
		{name: "two parts", raw: func(g string) string { return g[:strings.LastIndex(g, ".")] }},
		{name: "four parts", raw: func(g string) string { return g + ".AAAA" }},
		{name: "empty signature", raw: func(g string) string { return g[:strings.LastIndex(g, ".")+1] }},
		{name: "standard base64 characters", raw: func(g string) string { return "+/" + g }},
		{name: "base64 padding", raw: func(g string) string { return g + "==" }},
		{name: "whitespace inside", raw: func(g string) string { return strings.Replace(g, ".", " .", 1) }},
		{name: "JWS JSON serialization", raw: func(string) string { return `{"payload":"e30","signatures":[]}` }},
		{name: "header is not JSON", raw: func(g string) string { return b64([]byte("not json")) + g[strings.Index(g, "."):] }},
		{name: "two proofs joined", raw: func(g string) string { return g + "," + g }},
		{name: "oversized proof", mutate: func(f *forged) { f.header["x"] = strings.Repeat("a", MaxProofBytes) }},
		{name: "payload is not JSON", raw: func(string) string {
			f := goodForged(t)
			input := b64JSON(t, f.header) + "." + b64([]byte("not json"))
			return input + "." + b64(f.sign([]byte(input)))
		}},
		// Point 3: required claims, of the right types.
		{name: "jti missing", mutate: func(f *forged) { delete(f.claims, "jti") }},
		{name: "jti empty", mutate: func(f *forged) { f.claims["jti"] = "" }},
		{name: "jti a number", mutate: func(f *forged) { f.claims["jti"] = 42 }},
		{name: "htm missing", mutate: func(f *forged) { delete(f.claims, "htm") }},
		{name: "htu missing", mutate: func(f *forged) { delete(f.claims, "htu") }},
		{name: "iat missing", mutate: func(f *forged) { delete(f.claims, "iat") }},
		{name: "iat a string", mutate: func(f *forged) { f.claims["iat"] = "1700000000" }},
		{name: "iat negative", mutate: func(f *forged) { f.claims["iat"] = -1 }},
		{name: "iat huge", mutate: func(f *forged) { f.claims["iat"] = 1e300 }},
		// Point 4: typ.
		{name: "typ missing", mutate: func(f *forged) { delete(f.header, "typ") }},
		{name: "typ JWT", mutate: func(f *forged) { f.header["typ"] = "JWT" }},
		{name: "typ at+jwt", mutate: func(f *forged) { f.header["typ"] = "at+jwt" }},
		// Point 5: alg.
		{name: "alg none", mutate: func(f *forged) {
			f.header["alg"] = "none"
			f.sign = func([]byte) []byte { return []byte("x") }
		}},
		{name: "alg HS256 keyed with the jwk's bytes", mutate: func(f *forged) {
			f.header["alg"] = "HS256"
			f.sign = hs256
		}},
		{name: "alg HS256 even when listed in Algs", mutate: func(f *forged) {
			f.header["alg"] = "HS256"
			f.sign = hs256
		}, cfg: func(v *Verifier) { v.Algs = []jose.SignatureAlgorithm{jose.HS256, jose.ES256} }},
		{name: "alg not in the configured Algs", cfg: func(v *Verifier) { v.Algs = []jose.SignatureAlgorithm{jose.PS256} }},
		{name: "alg missing", mutate: func(f *forged) { delete(f.header, "alg") }},
		{name: "ES256 with a P-384 key", mutate: func(f *forged) {
			f.header["jwk"] = jwkJSON(t, p384Key.Public())
			f.sign = esSigner(p384Key, sha256.New)
		}},
		{name: "RS256 with a 1024-bit key", mutate: func(f *forged) {
			f.header["alg"] = "RS256"
			f.header["jwk"] = jwkJSON(t, rsa1024.Public())
			f.sign = rs256Signer(rsa1024)
		}},
		{name: "RS256 with an EC key", mutate: func(f *forged) { f.header["alg"] = "RS256" }},
		{name: "jwk alg member contradicts the header", mutate: func(f *forged) {
			f.header["jwk"].(map[string]any)["alg"] = "ES384"
		}},
		{name: "jwk for encryption", mutate: func(f *forged) { f.header["jwk"].(map[string]any)["use"] = "enc" }},
		// Point 6: the signature, by the embedded key.
		{name: "signature by another key than the jwk", mutate: func(f *forged) { f.sign = esSigner(p256Alt, sha256.New) }},
		{name: "claims changed after signing", raw: func(g string) string {
			parts := strings.Split(g, ".")
			parts[1] = b64([]byte(`{"jti":"x","htm":"POST","htu":"` + tokenURL + `","iat":1700000000}`))
			return strings.Join(parts, ".")
		}},
		// Point 7: jwk present and public.
		{name: "jwk missing", mutate: func(f *forged) { delete(f.header, "jwk") }},
		{name: "jwk with the private key d", mutate: func(f *forged) { f.header["jwk"] = jwkJSON(t, p256Key) }},
		{name: "jwk symmetric (oct)", mutate: func(f *forged) {
			f.header["jwk"] = map[string]any{"kty": "oct", "k": b64([]byte("a shared secret of thirty-two bytes!"))}
		}},
		{name: "jwk a kid reference only", mutate: func(f *forged) {
			delete(f.header, "jwk")
			f.header["kid"] = "key-1"
		}},
		{name: "jwk not an object", mutate: func(f *forged) { f.header["jwk"] = "AAAA" }},
		// Point 8: htm.
		{name: "wrong htm", method: "GET"},
		{name: "htm in lower case", mutate: func(f *forged) { f.claims["htm"] = "post" }},
		// Point 9: htu.
		{name: "htu of another host", target: "https://evil.example.com/token"},
		{name: "htu of another path", target: "https://server.example.com/userinfo"},
		{name: "htu of another scheme", target: "http://server.example.com/token"},
		{name: "htu of another port", target: "https://server.example.com:8443/token"},
		{name: "htu path differs in case", mutate: func(f *forged) { f.claims["htu"] = "https://server.example.com/Token" }},
		{name: "htu with a trailing slash", mutate: func(f *forged) { f.claims["htu"] = tokenURL + "/" }},
		{name: "htu with an encoded slash", target: "https://server.example.com/a/b",
			mutate: func(f *forged) { f.claims["htu"] = "https://server.example.com/a%2Fb" }},
		{name: "htu relative", mutate: func(f *forged) { f.claims["htu"] = "/token" }},
		{name: "htu with userinfo", mutate: func(f *forged) { f.claims["htu"] = "https://user@server.example.com/token" }},
		{name: "htu not a URL", mutate: func(f *forged) { f.claims["htu"] = "https://server.example.com/%zz" }},
		// Point 11: the iat window.
		{name: "iat exactly MaxAge old", mutate: func(f *forged) { f.claims["iat"] = t0.Add(-DefaultMaxAge).Unix() }},
		{name: "iat an hour old", mutate: func(f *forged) { f.claims["iat"] = t0.Add(-time.Hour).Unix() }},
		{name: "iat past the leeway in the future", mutate: func(f *forged) { f.claims["iat"] = t0.Add(DefaultLeeway + time.Second).Unix() }},
		{name: "iat in the future with a shorter configured leeway", mutate: func(f *forged) { f.claims["iat"] = t0.Add(5 * time.Second).Unix() },
			cfg: func(v *Verifier) { v.Leeway = -1 }},
		// Point 12: ath.
		{name: "ath missing at a resource", target: resourceURL, method: "GET", token: accessToken,
			mutate: func(f *forged) { f.claims["htm"], f.claims["htu"] = "GET", resourceURL }},
		{name: "ath of another token", target: resourceURL, method: "GET", token: accessToken,
			mutate: func(f *forged) {
				f.claims["htm"], f.claims["htu"], f.claims["ath"] = "GET", resourceURL, AccessTokenHash("another token")
			}},
		{name: "ath in padded standard base64", target: resourceURL, method: "GET", token: accessToken,
			mutate: func(f *forged) {
				sum := sha256.Sum256([]byte(accessToken))
				f.claims["htm"], f.claims["htu"], f.claims["ath"] = "GET", resourceURL, base64.StdEncoding.EncodeToString(sum[:])
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goodForged(t)
			var proof string
			switch {
			case tc.raw != nil:
				proof = tc.raw(f.compact(t))
			default:
				if tc.mutate != nil {
					tc.mutate(&f)
				}
				proof = f.compact(t)
			}
			v := newVerifier()
			if tc.cfg != nil {
				tc.cfg(v)
			}
			method, target := tc.method, tc.target
			if method == "" {
				method = "POST"
			}
			if target == "" {
				target = tokenURL
			}
			p, err := v.Verify(proof, method, mustURL(t, target), tc.token)
			if err == nil {
				t.Fatalf("attack accepted: %+v", p)
			}
			var de *Error
			if !errors.As(err, &de) || de.Code != CodeInvalidProof {
				t.Fatalf("error %v (%T), want an *Error with code %s", err, err, CodeInvalidProof)
			}
			t.Logf("refused: %s", de.Description)
			if de.Error() == "" || strings.ContainsAny(de.Error(), `"\`) {
				t.Errorf("description %q is not safe to quote in a challenge", de.Error())
			}
		})
	}
}

// signed builds a proof with go-jose, as a real client library would.
func signed(tb testing.TB, alg jose.SignatureAlgorithm, key any, claims map[string]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestVerifyAcceptsEveryAsymmetricAlgorithm(t *testing.T) {
	testKeys(t)
	cases := []struct {
		alg jose.SignatureAlgorithm
		key any
	}{
		{jose.ES256, p256Key}, {jose.ES384, p384Key}, {jose.ES512, p521Key},
		{jose.RS256, rsaKey}, {jose.RS384, rsaKey}, {jose.RS512, rsaKey},
		{jose.PS256, rsaKey}, {jose.PS384, rsaKey}, {jose.PS512, rsaKey},
		{jose.EdDSA, edKey},
	}
	v := newVerifier()
	for _, tc := range cases {
		t.Run(string(tc.alg), func(t *testing.T) {
			proof := signed(t, tc.alg, tc.key, map[string]any{"jti": randomJTI(), "htm": "POST", "htu": tokenURL, "iat": t0.Unix()})
			p, err := v.Verify(proof, "POST", mustURL(t, tokenURL), "")
			if err != nil {
				t.Fatalf("valid %s proof refused: %v", tc.alg, err)
			}
			signer, _ := tc.key.(crypto.Signer)
			want, _ := Thumbprint(jose.JSONWebKey{Key: signer.Public()})
			if p.JKT != want || !p.Key.IsPublic() {
				t.Errorf("jkt %s, want %s (public %v)", p.JKT, want, p.Key.IsPublic())
			}
		})
	}
	if got := strings.Join(v.SupportedAlgs(), " "); got != "ES256 ES384 ES512 RS256 RS384 RS512 PS256 PS384 PS512 EdDSA" {
		t.Errorf("SupportedAlgs %s", got)
	}
	restricted := &Verifier{Algs: []jose.SignatureAlgorithm{jose.HS256, jose.ES256, "none", jose.ES256}}
	if got := strings.Join(restricted.SupportedAlgs(), " "); got != "ES256" {
		t.Errorf("SupportedAlgs with HS256 and none configured: %s, want ES256", got)
	}
}

// TestHTUComparisonNormalisesButDoesNotConflate: RFC 9449 §4.3 — query and
// fragment ignored, syntax- and scheme-based normalisation applied.
func TestHTUComparisonNormalisesButDoesNotConflate(t *testing.T) {
	testKeys(t)
	cases := []struct{ htu, target string }{
		{tokenURL, tokenURL + "?client_id=x&a=b"},
		{tokenURL + "?ignored=1#frag", tokenURL},
		{"HTTPS://Server.EXAMPLE.com/token", tokenURL},
		{tokenURL, "https://SERVER.example.com/token"},
		{"https://server.example.com:443/token", tokenURL},
		{"http://server.example.com:80/token", "http://server.example.com/token"},
		{"https://server.example.com:8443/token", "https://server.example.com:8443/token"},
		{"https://server.example.com/%74%6F%6b%65%6E", tokenURL},
		{"https://server.example.com/a%2fb", "https://server.example.com/a%2Fb"},
		{"https://server.example.com/x/../token", tokenURL},
		{"https://server.example.com/./token", tokenURL},
		{"https://server.example.com", "https://server.example.com/"},
		{"https://[2001:DB8::1]/token", "https://[2001:db8::1]:443/token"},
	}
	v := newVerifier()
	for _, tc := range cases {
		t.Run(tc.htu+" vs "+tc.target, func(t *testing.T) {
			f := goodForged(t)
			f.claims["htu"] = tc.htu
			if _, err := v.Verify(f.compact(t), "POST", mustURL(t, tc.target), ""); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

func TestIATWindowBoundaries(t *testing.T) {
	cases := []struct {
		name           string
		iat            time.Time
		maxAge, leeway time.Duration
		ok             bool
	}{
		{"now", t0, 0, 0, true},
		{"just under MaxAge old", t0.Add(-DefaultMaxAge + time.Second), 0, 0, true},
		{"MaxAge old", t0.Add(-DefaultMaxAge), 0, 0, false},
		{"at the leeway", t0.Add(DefaultLeeway), 0, 0, true},
		{"past the leeway", t0.Add(DefaultLeeway + time.Second), 0, 0, false},
		{"configured MaxAge", t0.Add(-59 * time.Second), time.Minute, 0, true},
		{"past configured MaxAge", t0.Add(-61 * time.Second), time.Minute, 0, false},
		{"configured leeway", t0.Add(2 * time.Minute), 0, 2 * time.Minute, true},
		{"no leeway", t0.Add(time.Second), 0, -1, false},
		{"no leeway, now", t0, 0, -1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goodForged(t)
			f.claims["iat"] = tc.iat.Unix()
			v := &Verifier{MaxAge: tc.maxAge, Leeway: tc.leeway, Now: fixedClock}
			_, err := v.Verify(f.compact(t), "POST", mustURL(t, tokenURL), "")
			if (err == nil) != tc.ok {
				t.Errorf("iat %v: err %v, want ok=%v", tc.iat.Sub(t0), err, tc.ok)
			}
		})
	}
}

// TestReplayedJTIIsRefused: RFC 9449 §11.1 — a jti is single-use for as
// long as its proof could pass the iat window, per key.
func TestReplayedJTIIsRefused(t *testing.T) {
	testKeys(t)
	now := t0
	v := &Verifier{Now: func() time.Time { return now }}
	f := goodForged(t)
	proof := f.compact(t)
	if _, err := v.Verify(proof, "POST", mustURL(t, tokenURL), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(proof, "POST", mustURL(t, tokenURL), ""); err == nil {
		t.Fatal("the same proof was accepted twice")
	}
	// A new proof with the same jti by the same key (a client bug or an
	// attacker holding the key and replaying) is refused too.
	again := goodForged(t)
	again.claims["jti"] = f.claims["jti"]
	again.claims["iat"] = t0.Add(time.Second).Unix()
	if _, err := v.Verify(again.compact(t), "POST", mustURL(t, tokenURL), ""); err == nil {
		t.Fatal("a second proof with the same jti was accepted")
	}
	// Another key may use the same jti: jtis are only unique per client.
	other := goodForged(t)
	other.claims["jti"] = f.claims["jti"]
	other.header["jwk"] = jwkJSON(t, p256Alt.Public())
	other.sign = esSigner(p256Alt, sha256.New)
	if _, err := v.Verify(other.compact(t), "POST", mustURL(t, tokenURL), ""); err != nil {
		t.Fatalf("another key's proof with the same jti: %v", err)
	}
	// A proof refused for another reason does not use up its jti.
	fresh := goodForged(t)
	proof = fresh.compact(t)
	if _, err := v.Verify(proof, "GET", mustURL(t, tokenURL), ""); err == nil {
		t.Fatal("wrong method accepted")
	}
	if _, err := v.Verify(proof, "POST", mustURL(t, tokenURL), ""); err != nil {
		t.Fatalf("a proof refused once for its method is then refused for replay: %v", err)
	}
	// Entries are dropped once the proof could no longer pass anyway.
	if n := v.replay.Len(now); n != 3 {
		t.Errorf("%d entries remembered, want 3", n)
	}
	now = t0.Add(DefaultMaxAge + 2*time.Second)
	if n := v.replay.Len(now); n != 0 {
		t.Errorf("%d entries remembered after the window, want 0", n)
	}
}

func TestReplayCacheFullRefusesNewProofs(t *testing.T) {
	v := &Verifier{Now: fixedClock, Replay: NewReplayCache(2)}
	for i := range 2 {
		if _, err := v.Verify(goodForged(t).compact(t), "POST", mustURL(t, tokenURL), ""); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
	}
	_, err := v.Verify(goodForged(t).compact(t), "POST", mustURL(t, tokenURL), "")
	var de *Error
	if !errors.As(err, &de) || de.Code != CodeInvalidProof || !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("third proof with a full cache: %v, want invalid_dpop_proof wrapping ErrReplayCacheFull", err)
	}
}

// TestServerNonceIsRequiredWhenConfigured: RFC 9449 §8 — missing, stale or
// forged nonces are use_dpop_nonce.
func TestServerNonceIsRequiredWhenConfigured(t *testing.T) {
	nonces := NewNonceSource(time.Minute)
	other := NewNonceSource(time.Minute)
	cases := []struct {
		name  string
		nonce any // nil: no nonce claim
		code  string
	}{
		{"nonce missing", nil, CodeUseNonce},
		{"nonce empty", "", CodeUseNonce},
		{"nonce forged", "AAAAAAAAAAAAAAAAAAAAAAAA", CodeUseNonce},
		{"nonce of another server", other.NonceAt(t0), CodeUseNonce},
		{"nonce two windows old", nonces.NonceAt(t0.Add(-2 * time.Minute)), CodeUseNonce},
		{"nonce from the future", nonces.NonceAt(t0.Add(time.Minute)), CodeUseNonce},
		{"nonce a number", 42, CodeInvalidProof},
		{"nonce of this window", nonces.NonceAt(t0), ""},
		{"nonce of the previous window", nonces.NonceAt(t0.Add(-time.Minute)), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goodForged(t)
			if tc.nonce != nil {
				f.claims["nonce"] = tc.nonce
			}
			v := &Verifier{Now: fixedClock, Nonces: nonces}
			_, err := v.Verify(f.compact(t), "POST", mustURL(t, tokenURL), "")
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || de.Code != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
		})
	}
	t.Run("nonce ignored when none is required", func(t *testing.T) {
		f := goodForged(t)
		f.claims["nonce"] = "whatever"
		if _, err := newVerifier().Verify(f.compact(t), "POST", mustURL(t, tokenURL), ""); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAthAtTheTokenEndpointIsAllowed(t *testing.T) {
	f := goodForged(t)
	f.claims["ath"] = AccessTokenHash("some token")
	if _, err := newVerifier().Verify(f.compact(t), "POST", mustURL(t, tokenURL), ""); err != nil {
		t.Fatalf("a proof with ath at the token endpoint: %v", err)
	}
}

func TestVerifyRefusesATargetThatIsNotAbsolute(t *testing.T) {
	proof := goodForged(t).compact(t)
	for _, target := range []*url.URL{nil, {Path: "/token"}, {Scheme: "ftp", Host: "x", Path: "/"}} {
		_, err := newVerifier().Verify(proof, "POST", target, "")
		var de *Error
		if err == nil || errors.As(err, &de) {
			t.Errorf("target %v: %v, want a plain error (the caller's mistake)", target, err)
		}
	}
}

// TestVerifyAcceptsTheRFC9449Examples checks the proofs of Figures 2 and
// 13 at the time they were made, and their thumbprint and ath.
func TestVerifyAcceptsTheRFC9449Examples(t *testing.T) {
	figure2 := "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik" +
		"VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR" +
		"nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE" +
		"QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj" +
		"oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia" +
		"WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg" +
		"4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	figure13 := "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik" +
		"VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR" +
		"nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE" +
		"QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj" +
		"oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z" +
		"WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF" +
		"c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E" +
		"OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" // Figure 9
	v := &Verifier{Now: func() time.Time { return time.Unix(1562262618, 0) }}
	p, err := v.Verify(figure2, "POST", mustURL(t, tokenURL), "")
	if err != nil {
		t.Fatalf("Figure 2: %v", err)
	}
	if p.JKT != jkt || p.JTI != "-BwC3ESc6acc2lTc" {
		t.Errorf("Figure 2: jkt %s jti %s", p.JKT, p.JTI)
	}
	p, err = v.Verify(figure13, "GET", mustURL(t, resourceURL), accessToken)
	if err != nil {
		t.Fatalf("Figure 13: %v", err)
	}
	if p.JKT != jkt {
		t.Errorf("Figure 13: jkt %s", p.JKT)
	}
	if got := AccessTokenHash(accessToken); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Errorf("ath %s", got)
	}
}

// TestThumbprintOfTheRFC7638Example: RFC 7638 §3.1.
func TestThumbprintOfTheRFC7638Example(t *testing.T) {
	var k jose.JSONWebKey
	err := k.UnmarshalJSON([]byte(`{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Thumbprint(k); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("thumbprint %s", got)
	}
}

func TestFromHeaderRefusesZeroOrSeveralProofs(t *testing.T) {
	proof := goodForged(t).compact(t)
	cases := []struct {
		name   string
		header http.Header
		want   string // "" for an error
		noneOK bool   // ErrNoProof expected
	}{
		{"one", http.Header{"Dpop": {proof}}, proof, false},
		{"one, key spelled as in the RFC", http.Header{"DPoP": {proof}}, proof, false},
		{"none", http.Header{"Authorization": {"DPoP x"}}, "", true},
		{"two values", http.Header{"Dpop": {proof, proof}}, "", false},
		{"two spellings", http.Header{"Dpop": {proof}, "DPOP": {proof}}, "", false},
		{"two joined by a proxy", http.Header{"Dpop": {proof + ", " + proof}}, "", false},
		{"empty", http.Header{"Dpop": {" "}}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromHeader(tc.header)
			switch {
			case tc.want != "":
				if err != nil || got != tc.want {
					t.Errorf("got %q, %v", got, err)
				}
			case tc.noneOK:
				if !errors.Is(err, ErrNoProof) {
					t.Errorf("err %v, want ErrNoProof", err)
				}
			default:
				var de *Error
				if !errors.As(err, &de) || de.Code != CodeInvalidProof {
					t.Errorf("err %v, want invalid_dpop_proof", err)
				}
			}
		})
	}
}

// opaqueSigner hides the concrete key type, like an HSM-backed signer.
type opaqueSigner struct{ crypto.Signer }

func TestNewProofRoundTrips(t *testing.T) {
	testKeys(t)
	for name, key := range map[string]crypto.Signer{
		"P-256": p256Key, "P-384": p384Key, "P-521": p521Key, "RSA": rsaKey, "Ed25519": edKey,
		"opaque P-256": opaqueSigner{p256Key},
	} {
		t.Run(name, func(t *testing.T) {
			proof, err := NewProofAt(key, "GET", resourceURL+"?q=1#f", accessToken, "n-1", t0)
			if err != nil {
				t.Fatal(err)
			}
			p, err := newVerifier().Verify(proof, "GET", mustURL(t, resourceURL), accessToken)
			if err != nil {
				t.Fatalf("NewProof's proof refused: %v", err)
			}
			want, _ := Thumbprint(jose.JSONWebKey{Key: key.Public()})
			if p.JKT != want {
				t.Errorf("jkt %s, want %s", p.JKT, want)
			}
			parts := strings.Split(proof, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var c map[string]any
			json.Unmarshal(raw, &c)
			if c["htu"] != resourceURL || c["nonce"] != "n-1" || len(c["jti"].(string)) < 16 {
				t.Errorf("claims %v", c)
			}
		})
	}
	if _, err := NewProof(p256Key, "GET", "/relative", "", ""); err == nil {
		t.Error("NewProof accepted a relative URL")
	}
}

// FuzzVerify: whatever the proof, method and token, Verify returns an
// answer, never a panic, and only *Error values for proof failures.
//
//	go test ./dpop/ -run '^$' -fuzz FuzzVerify -fuzztime 60s
func FuzzVerify(f *testing.F) {
	testKeys(f)
	good := goodForged(f)
	f.Add(good.compact(f), "POST", "")
	f.Add(signed(f, jose.EdDSA, edKey, map[string]any{"jti": "j", "htm": "GET", "htu": resourceURL, "iat": t0.Unix(), "ath": AccessTokenHash(accessToken)}), "GET", accessToken)
	f.Add(signed(f, jose.RS256, rsaKey, map[string]any{"jti": "j", "htm": "POST", "htu": tokenURL, "iat": 1.5e9}), "POST", "")
	private := goodForged(f)
	private.header["jwk"] = jwkJSON(f, p256Key)
	f.Add(private.compact(f), "POST", "")
	f.Add("e30.e30.e30", "POST", "")
	f.Add("eyJhbGciOiJub25lIn0.e30.", "POST", "")
	f.Add("..", "", "")
	f.Add(strings.Repeat("A", MaxProofBytes+1), "POST", "x")
	target, _ := url.Parse(tokenURL)
	f.Fuzz(func(t *testing.T, proof, method, token string) {
		v := &Verifier{Now: fixedClock, Nonces: nil}
		p, err := v.Verify(proof, method, target, token)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || (de.Code != CodeInvalidProof && de.Code != CodeUseNonce) {
				t.Fatalf("error %v (%T) is not a DPoP error", err, err)
			}
			return
		}
		if p.JKT == "" || !p.Key.IsPublic() {
			t.Fatalf("accepted proof without a public key: %+v", p)
		}
	})
}

// BenchmarkVerify measures one ES256 proof check, replay cache included.
//
//	go test ./dpop/ -run '^$' -bench Verify -benchmem
func BenchmarkVerify(b *testing.B) {
	testKeys(b)
	proofs := make([]string, b.N)
	for i := range proofs {
		p, err := NewProofAt(p256Key, "GET", resourceURL, accessToken, "", t0)
		if err != nil {
			b.Fatal(err)
		}
		proofs[i] = p
	}
	v := &Verifier{Now: fixedClock, Replay: NewReplayCache(b.N + 1)}
	target, _ := url.Parse(resourceURL)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(proofs[i], "GET", target, accessToken); err != nil {
			b.Fatal(err)
		}
	}
}
