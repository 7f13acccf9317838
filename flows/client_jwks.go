package flows

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-gw/portcullis/store"
)

// Signature algorithms accepted on client assertions (RFC 7523 §2.2, OIDC
// Core §9). private_key_jwt takes asymmetric algorithms only, so a public
// key can never be (mis)used as an HMAC key; client_secret_jwt takes HMAC
// only. "none" is never accepted.
var (
	privateKeyJWTAlgs = []jose.SignatureAlgorithm{
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	}
	clientSecretJWTAlgs = []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}
	// assertionAlgs is every algorithm a client assertion may be parsed
	// with; which of them a given client may use is decided per client.
	assertionAlgs = slices.Concat(privateKeyJWTAlgs, clientSecretJWTAlgs)
)

// Limits on registered and fetched client JWK Sets.
const (
	// maxJWKSKeys bounds the keys of one set: every candidate key may cost
	// a signature verification.
	maxJWKSKeys = 32
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3:
	// "A key of size 2048 bits or larger MUST be used").
	minRSABits = 2048
	// maxCachedInlineSets bounds the parsed registered sets kept in memory.
	maxCachedInlineSets = 4096
)

// assertionSigningAlgs lists the algorithms published in discovery as
// *_auth_signing_alg_values_supported.
func assertionSigningAlgs() []string {
	out := make([]string, len(assertionAlgs))
	for i, a := range assertionAlgs {
		out[i] = string(a)
	}
	return out
}

func algNames(algs []jose.SignatureAlgorithm) string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// CheckAssertionSigningAlg reports whether alg may be registered as the
// token_endpoint_auth_signing_alg of a client using method: an asymmetric
// algorithm for private_key_jwt, HS256/384/512 for client_secret_jwt. An
// empty alg (any algorithm that fits the method) is always fine.
func CheckAssertionSigningAlg(method, alg string) error {
	if alg == "" {
		return nil
	}
	var algs []jose.SignatureAlgorithm
	switch method {
	case AuthMethodPrivateKeyJWT:
		algs = privateKeyJWTAlgs
	case AuthMethodSecretJWT:
		algs = clientSecretJWTAlgs
	default:
		return fmt.Errorf("token_endpoint_auth_signing_alg applies only to client_secret_jwt and private_key_jwt clients, not %s", method)
	}
	if !slices.Contains(algs, jose.SignatureAlgorithm(alg)) {
		return fmt.Errorf("token_endpoint_auth_signing_alg %q does not fit %s; use one of %s", alg, method, algNames(algs))
	}
	return nil
}

// MinHMACSecretBytes is the shortest client secret client_secret_jwt
// accepts for alg (RFC 7518 §3.2: "A key of the same size as the hash
// output (for instance, 256 bits for "HS256") or larger MUST be used"),
// and for any HMAC algorithm when alg is empty.
func MinHMACSecretBytes(alg string) int {
	switch jose.SignatureAlgorithm(alg) {
	case jose.HS384:
		return 48
	case jose.HS512:
		return 64
	}
	return 32
}

// ValidateJWKSURI checks a client's jwks_uri: an absolute https URL, or
// http on a loopback host for development.
func ValidateJWKSURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("jwks_uri %q must be an absolute https URL", raw)
	}
	if u.Fragment != "" || u.User != nil {
		return fmt.Errorf("jwks_uri %q must not contain a fragment or user info", raw)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("jwks_uri %q uses plain http on a non-loopback host; use https", raw)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// privateJWKMembers are the members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2; "priv" for
// ML-DSA).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// ParseClientJWKS parses and checks a client's JWK Set (RFC 7517 §5) for
// private_key_jwt: a JSON object with a "keys" array of public RSA (2048
// bits or more), EC (P-256, P-384, P-521) or Ed25519 keys. A set holding
// private or symmetric key material is refused. Keys marked "use":"enc"
// are skipped; at least one signing key must remain.
func ParseClientJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the JWK Set is not a JSON object with a keys array: %v", err)
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("the JWK Set has %d keys; at most %d are accepted", len(doc.Keys), maxJWKSKeys)
	}
	set := &jose.JSONWebKeySet{}
	for i, rawKey := range doc.Keys {
		k, err := parseClientJWK(rawKey)
		if err != nil {
			return nil, fmt.Errorf("the JWK Set's key %d: %w", i, err)
		}
		if k != nil {
			set.Keys = append(set.Keys, *k)
		}
	}
	if len(set.Keys) == 0 {
		return nil, errors.New(`the JWK Set has no signing key: add the client's public key (RSA, EC or Ed25519) with "use":"sig" or no "use"`)
	}
	return set, nil
}

// parseClientJWK parses one key of a client JWK Set; nil, nil for an
// encryption key, which client authentication ignores.
func parseClientJWK(raw json.RawMessage) (*jose.JSONWebKey, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	var kid, use, kty string
	_ = json.Unmarshal(members["kid"], &kid)
	_ = json.Unmarshal(members["use"], &use)
	_ = json.Unmarshal(members["kty"], &kty)
	for _, m := range privateJWKMembers {
		if _, ok := members[m]; ok {
			if kty == "oct" {
				return nil, fmt.Errorf("kid %q is a symmetric (oct) key; private_key_jwt needs public keys: register the public key only", kid)
			}
			return nil, fmt.Errorf("kid %q contains a private key; register the public key only", kid)
		}
	}
	if use == "enc" {
		return nil, nil
	}
	if use != "" && use != "sig" {
		return nil, fmt.Errorf("kid %q has use %q; signing keys have use \"sig\" or none", kid, use)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("kid %q: %v", kid, err)
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, fmt.Errorf("kid %q is not a valid public key", kid)
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("kid %q is a %d-bit RSA key; use %d bits or more", kid, pub.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if ecAlg(pub.Curve) == "" {
			return nil, fmt.Errorf("kid %q uses curve %s; use P-256, P-384 or P-521", kid, pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("kid %q has key type %s, which client assertions cannot use; use RSA, EC or Ed25519", kid, kty)
	}
	if k.Algorithm != "" && !slices.Contains(privateKeyJWTAlgs, jose.SignatureAlgorithm(k.Algorithm)) {
		return nil, fmt.Errorf("kid %q has alg %q; use one of %s", kid, k.Algorithm, algNames(privateKeyJWTAlgs))
	}
	if k.Algorithm != "" && !keyFitsAlg(&k, k.Algorithm) {
		return nil, fmt.Errorf("kid %q has alg %s, which its key type cannot sign with", kid, k.Algorithm)
	}
	return &k, nil
}

func ecAlg(c elliptic.Curve) jose.SignatureAlgorithm {
	switch c {
	case elliptic.P256():
		return jose.ES256
	case elliptic.P384():
		return jose.ES384
	case elliptic.P521():
		return jose.ES512
	}
	return ""
}

// keyFitsAlg reports whether k can verify signatures made with alg: the
// key type matches the algorithm family (and the curve the ES variant),
// and the key's own "alg", when it has one, is alg.
func keyFitsAlg(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return string(ecAlg(pub.Curve)) == alg
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// candidateKeys returns the keys of set that may have signed a JWS with
// kid and alg: those with that kid (any key when the header has no kid)
// that fit alg.
func candidateKeys(set *jose.JSONWebKeySet, kid, alg string) []*jose.JSONWebKey {
	var out []*jose.JSONWebKey
	for i := range set.Keys {
		k := &set.Keys[i]
		if (kid == "" || k.KeyID == kid) && keyFitsAlg(k, alg) {
			out = append(out, k)
		}
	}
	return out
}

// ValidateAssertionClient checks what a client registered for
// private_key_jwt or client_secret_jwt needs to authenticate: its keys
// (exactly one of a parseable public JWKS or a valid jwks_uri) or a long
// enough secret, and a signing alg that fits the method and its keys.
// Other clients must not carry assertion settings.
func ValidateAssertionClient(c *store.Client) error {
	method := c.TokenEndpointAuthMethod
	if err := CheckAssertionSigningAlg(method, c.TokenEndpointAuthSigningAlg); err != nil {
		return err
	}
	switch method {
	case AuthMethodPrivateKeyJWT:
		switch {
		case len(c.JWKS) > 0 && c.JWKSURI != "":
			return errors.New("private_key_jwt: set jwks or jwks_uri, not both")
		case len(c.JWKS) == 0 && c.JWKSURI == "":
			return errors.New("private_key_jwt needs the client's public keys: set jwks, jwks_file or jwks_uri")
		case c.JWKSURI != "":
			return ValidateJWKSURI(c.JWKSURI)
		}
		set, err := ParseClientJWKS(c.JWKS)
		if err != nil {
			return fmt.Errorf("jwks: %w", err)
		}
		if alg := c.TokenEndpointAuthSigningAlg; alg != "" && len(candidateKeys(set, "", alg)) == 0 {
			return fmt.Errorf("jwks: no key can verify token_endpoint_auth_signing_alg %s", alg)
		}
		if c.HMACSecret != "" {
			return errors.New("private_key_jwt: the client must not keep an HMAC secret")
		}
	case AuthMethodSecretJWT:
		if minLen := MinHMACSecretBytes(c.TokenEndpointAuthSigningAlg); len(c.HMACSecret) < minLen {
			return fmt.Errorf("client_secret_jwt needs a secret of at least %d bytes (RFC 7518 §3.2; try: openssl rand -base64 48)", minLen)
		}
		if len(c.JWKS) > 0 || c.JWKSURI != "" {
			return errors.New("client_secret_jwt: jwks and jwks_uri are for private_key_jwt clients")
		}
	default:
		if len(c.JWKS) > 0 || c.JWKSURI != "" {
			return fmt.Errorf("jwks, jwks_file and jwks_uri are for private_key_jwt clients, not %s", method)
		}
		if c.HMACSecret != "" {
			return fmt.Errorf("only client_secret_jwt clients keep an HMAC secret, not %s", method)
		}
	}
	return nil
}

// inlineKeySets caches the parsed registered JWK Sets of private_key_jwt
// clients, so the request path does not parse JSON keys every time. An
// entry is reused only while the client's stored JWKS is byte-identical.
type inlineKeySets struct {
	mu   sync.Mutex
	sets map[string]inlineKeySet // by client_id
}

type inlineKeySet struct {
	raw []byte
	set *jose.JSONWebKeySet
}

func (c *inlineKeySets) get(client *store.Client) (*jose.JSONWebKeySet, error) {
	c.mu.Lock()
	e, ok := c.sets[client.ID]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, client.JWKS) {
		return e.set, nil
	}
	set, err := ParseClientJWKS(client.JWKS)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sets == nil || len(c.sets) >= maxCachedInlineSets {
		c.sets = map[string]inlineKeySet{}
	}
	c.sets[client.ID] = inlineKeySet{raw: bytes.Clone(client.JWKS), set: set}
	return set, nil
}
