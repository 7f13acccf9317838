package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Verifier checks DPoP proofs (RFC 9449 §4.3). Set its fields before the
// first Verify; it is then safe for concurrent use and must not be copied.
type Verifier struct {
	// Algs are the accepted proof algorithms. Default: DefaultAlgs (ES256,
	// ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA). none
	// and the HMAC algorithms are never accepted, even when listed.
	Algs []jose.SignatureAlgorithm
	// MaxAge bounds how old a proof's iat may be (default DefaultMaxAge, 5
	// minutes); Leeway how far in the future (default DefaultLeeway, 30
	// seconds; negative for none). RFC 9449 §11.1.
	MaxAge, Leeway time.Duration
	// Replay remembers proof jti values (per key thumbprint) until they
	// could no longer pass the iat window. Nil: a private in-memory cache
	// of DefaultReplayEntries. Share one cache between Verifiers only if
	// their MaxAge is the same or the cache outlives the longest.
	Replay *ReplayCache
	// Nonces, when set, requires a server-provided nonce (RFC 9449 §8/§9):
	// a proof without a valid one fails with Error{Code: "use_dpop_nonce"};
	// the caller answers with a DPoP-Nonce header from Nonces.Nonce(). The
	// iat window still applies.
	Nonces *NonceSource
	// Now is the clock. Default time.Now.
	Now func() time.Time

	once   sync.Once
	algs   []jose.SignatureAlgorithm
	replay *ReplayCache
	maxAge time.Duration
	leeway time.Duration
	now    func() time.Time
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's public key,
	// base64url: what a token is bound to (cnf.jkt). A resource server
	// compares it with the token's cnf.jkt (RFC 9449 §4.3 point 12, second
	// bullet) and answers invalid_token when they differ.
	JKT      string
	JTI      string
	IssuedAt time.Time
	// Key is the public key.
	Key jose.JSONWebKey
}

func (v *Verifier) setup() {
	v.once.Do(func() {
		algs := v.Algs
		if len(algs) == 0 {
			algs = DefaultAlgs
		}
		for _, a := range algs {
			if asymmetric[a] && !slices.Contains(v.algs, a) {
				v.algs = append(v.algs, a)
			}
		}
		v.maxAge, v.leeway, v.now, v.replay = v.MaxAge, max(v.Leeway, 0), v.Now, v.Replay
		if v.maxAge <= 0 {
			v.maxAge = DefaultMaxAge
		}
		if v.Leeway == 0 {
			v.leeway = DefaultLeeway
		}
		if v.now == nil {
			v.now = time.Now
		}
		if v.replay == nil {
			v.replay = NewReplayCache(DefaultReplayEntries)
		}
	})
}

// SupportedAlgs are the algorithm names the Verifier accepts, for
// dpop_signing_alg_values_supported (RFC 9449 §5.1) and the algs parameter
// of a DPoP challenge (§7.1).
func (v *Verifier) SupportedAlgs() []string {
	v.setup()
	out := make([]string, len(v.algs))
	for i, a := range v.algs {
		out[i] = string(a)
	}
	return out
}

// claims are the proof claims of RFC 9449 §4.2 this package reads.
type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   string   `json:"ath"`
	Nonce string   `json:"nonce"`
}

// maxIAT bounds iat so that converting it to a time cannot overflow
// (year 5138; a real proof is far below).
const maxIAT = 1 << 37

// Verify checks proof (the DPoP header value, from FromHeader) for an HTTP
// request with method and target URL and, at a resource server, the access
// token it accompanies; accessToken "" at the token endpoint.
//
// target is the URL the client addressed: absolute, with the public scheme
// and host (behind a TLS-terminating proxy, not r.URL as the server saw
// it). Its query and fragment are ignored, scheme and host compared
// case-insensitively, default ports dropped and percent-encoding and dot
// segments normalised, on both sides.
//
// With accessToken "" a proof carrying ath is still accepted: ath is
// required "when the DPoP proof is used in conjunction with the
// presentation of an access token" (§4.2), and extra claims are allowed
// ("A DPoP proof MAY contain other JOSE Header Parameters or claims").
//
// A proof that fails a check is an *Error; a target that is not an
// absolute http(s) URL is a plain error (the caller's mistake, not the
// client's). The jti is only remembered once every check has passed.
func (v *Verifier) Verify(proof, method string, target *url.URL, accessToken string) (*Proof, error) {
	v.setup()
	if target == nil {
		return nil, errors.New("dpop: no target URL")
	}
	wantHTU, ok := canonicalURL(target)
	if !ok {
		return nil, errors.New("dpop: the target URL must be an absolute http(s) URL")
	}

	// §4.3 point 2: "The DPoP HTTP request header field value is a single
	// and well-formed JWT." Compact JWS only: base64url and two dots.
	if len(proof) > MaxProofBytes {
		return nil, invalid("the DPoP proof is too large")
	}
	if !compactJWS(proof) {
		return nil, invalid("the DPoP proof is not a compact JWT")
	}
	// §4.3 point 5: "The alg JOSE Header Parameter indicates a registered
	// asymmetric digital signature algorithm ..., is not none, is supported
	// by the application, and is acceptable per local policy." go-jose
	// refuses any alg outside the list before looking further.
	jws, err := jose.ParseSignedCompact(proof, v.algs)
	if err != nil {
		return nil, invalid("the DPoP proof is not a well-formed JWS with an accepted algorithm and a public jwk")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("the DPoP proof must have exactly one signature")
	}
	h := jws.Signatures[0].Protected

	// §4.3 point 4: "The typ JOSE Header Parameter has the value dpop+jwt."
	// Media types are case-insensitive (RFC 7515 §4.1.9).
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, ProofType) {
		return nil, invalid("the DPoP proof's typ must be dpop+jwt")
	}
	// §4.3 point 7: "The jwk JOSE Header Parameter does not contain a
	// private key." go-jose already refuses an embedded jwk with private or
	// symmetric members; IsPublic is the belt to those braces.
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, invalid("the DPoP proof's jwk header must be a public key")
	}
	if err := keyFitsAlg(jwk, jose.SignatureAlgorithm(h.Algorithm)); err != nil {
		return nil, err
	}
	// §4.3 point 6: "The JWT signature verifies with the public key
	// contained in the jwk JOSE Header Parameter."
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("the DPoP proof's signature does not verify with its jwk")
	}

	// §4.3 point 3: "All required claims per Section 4.2 are contained in
	// the JWT": jti, htm, htu, iat.
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("the DPoP proof's claims are not a JSON object of the right types")
	}
	if c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == nil {
		return nil, invalid("the DPoP proof must contain jti, htm, htu and iat")
	}
	// §4.3 point 8: "The htm claim matches the HTTP method of the current
	// request." Methods are case-sensitive (RFC 9110 §9.1).
	if c.HTM != method {
		return nil, invalid("the DPoP proof's htm does not match the request method")
	}
	// §4.3 point 9: "The htu claim matches the HTTP URI value for the HTTP
	// request in which the JWT was received, ignoring any query and
	// fragment parts." And: "servers SHOULD employ syntax-based
	// normalization ... and scheme-based normalization ... before comparing
	// the htu claim."
	htu, err := url.Parse(c.HTU)
	if err != nil {
		return nil, invalid("the DPoP proof's htu is not a URL")
	}
	if got, ok := canonicalURL(htu); !ok || got != wantHTU {
		return nil, invalid("the DPoP proof's htu does not match the request URL")
	}
	// §4.3 point 11: "The creation time of the JWT, as determined by ...
	// the iat claim ..., is within an acceptable window (see Section
	// 11.1)." §11.1: "servers MUST only accept DPoP proofs for a limited
	// time after their creation".
	if *c.IAT < 0 || *c.IAT > maxIAT {
		return nil, invalid("the DPoP proof's iat is out of range")
	}
	sec, frac := math.Modf(*c.IAT)
	iat := time.Unix(int64(sec), int64(frac*1e9))
	now := v.now()
	if !now.Before(iat.Add(v.maxAge)) {
		return nil, invalid("the DPoP proof is too old")
	}
	if iat.After(now.Add(v.leeway)) {
		return nil, invalid("the DPoP proof's iat is in the future")
	}
	// §4.3 point 12: "If presented to a protected resource in conjunction
	// with an access token, ensure that the value of the ath claim equals
	// the hash of that access token". The key binding (second bullet) is
	// the caller's: it compares Proof.JKT with the token's cnf.jkt.
	if accessToken != "" {
		if c.ATH == "" {
			return nil, invalid("the DPoP proof must contain ath, the hash of the access token")
		}
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(AccessTokenHash(accessToken))) != 1 {
			return nil, invalid("the DPoP proof's ath does not match the access token")
		}
	}
	// §4.3 point 10: "If the server provided a nonce value to the client,
	// the nonce claim matches the server-provided nonce value." §8: the
	// server answers use_dpop_nonce both when the nonce is missing and "when
	// there was a nonce mismatch".
	if v.Nonces != nil {
		if c.Nonce == "" {
			return nil, &Error{Code: CodeUseNonce, Description: "a DPoP nonce is required"}
		}
		if !v.Nonces.ValidAt(c.Nonce, now) {
			return nil, &Error{Code: CodeUseNonce, Description: "the DPoP nonce is stale or unknown"}
		}
	}

	jkt, err := Thumbprint(*jwk)
	if err != nil {
		return nil, invalid("the DPoP proof's jwk has no thumbprint")
	}
	// §11.1: "servers can store the jti value of each DPoP proof for the
	// time window in which the respective DPoP proof JWT would be accepted
	// to prevent multiple uses of the same DPoP proof." Keyed by the key's
	// thumbprint rather than the URI (stricter: a jti is single-use across
	// every URI), and hashed, so a large jti costs no memory ("store only a
	// hash thereof").
	switch err := v.replay.Record(replayKey(jkt, c.JTI), iat.Add(v.maxAge), now); {
	case errors.Is(err, ErrReplayed):
		return nil, invalid("the DPoP proof was already used")
	case err != nil:
		return nil, &Error{Code: CodeInvalidProof, Description: "the server cannot accept more DPoP proofs right now; retry shortly", cause: err}
	}
	return &Proof{JKT: jkt, JTI: c.JTI, IssuedAt: iat, Key: *jwk}, nil
}

func replayKey(jkt, jti string) string {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return string(h.Sum(nil))
}

// compactJWS reports whether s has the shape of a compact JWS: three
// non-empty base64url parts (the payload of a JWT is never empty).
func compactJWS(s string) bool {
	parts := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == start {
				return false
			}
			parts++
			start = i + 1
			continue
		}
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return parts == 3
}

// RSA modulus bounds: RFC 7518 §3.3 "A key of size 2048 bits or larger
// MUST be used"; the upper bound caps the work one proof can ask for.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// keyFitsAlg refuses a jwk that cannot be the key of alg (a P-384 key
// under ES256, an RSA key under ES256, a short RSA key) or whose own alg
// or use member says otherwise.
func keyFitsAlg(jwk *jose.JSONWebKey, alg jose.SignatureAlgorithm) *Error {
	if (jwk.Algorithm != "" && jwk.Algorithm != string(alg)) || (jwk.Use != "" && jwk.Use != "sig") {
		return invalid("the DPoP proof's jwk is not for the algorithm of the proof")
	}
	ok := false
	switch k := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		ok = (alg == jose.ES256 && k.Curve == elliptic.P256()) ||
			(alg == jose.ES384 && k.Curve == elliptic.P384()) ||
			(alg == jose.ES512 && k.Curve == elliptic.P521())
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			ok = k.N.BitLen() >= minRSABits && k.N.BitLen() <= maxRSABits
		}
	case ed25519.PublicKey:
		ok = alg == jose.EdDSA
	}
	if !ok {
		return invalid("the DPoP proof's jwk does not fit its algorithm")
	}
	return nil
}

// canonicalURL is u without query and fragment, normalised for comparison
// (RFC 3986 §6.2.2, §6.2.3): scheme and host lower-cased, the scheme's
// default port dropped, an empty path as "/", percent-encodings of
// unreserved characters decoded and the others upper-cased, dot segments
// removed. ok is false for anything but an absolute http(s) URL without
// userinfo.
func canonicalURL(u *url.URL) (string, bool) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", false
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	p, ok := normalizePath(u.EscapedPath())
	if !ok {
		return "", false
	}
	return scheme + "://" + host + p, true
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// normalizePath applies percent-encoding normalisation and then removes
// dot segments (RFC 3986 §6.2.2.2, §6.2.2.3) on an escaped path.
func normalizePath(p string) (string, bool) {
	if p == "" {
		return "/", true
	}
	if p[0] != '/' {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) {
			return "", false
		}
		hi, ok1 := unhex(p[i+1])
		lo, ok2 := unhex(p[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		if c := hi<<4 | lo; unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[hi])
			b.WriteByte(upperHex[lo])
		}
		i += 2
	}
	return removeDotSegments(b.String()), true
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
			continue
		}
		if last {
			out = append(out, "")
		}
	}
	return "/" + strings.Join(out, "/")
}

// RequestURL is the URL r was sent to as this server sees it: https when
// the connection is TLS, the Host header, the escaped path. Behind a proxy
// that terminates TLS or rewrites the host, pass the public URL to Verify
// instead.
func RequestURL(r *http.Request) *url.URL {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath}
}
