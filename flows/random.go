package flows

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
)

// randomToken returns 256 bits from the system CSPRNG, base64url encoded:
// codes, refresh tokens, opaque access tokens, session ids and secrets.
func randomToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return short reads)
	return b
}

// digest is how codes, refresh tokens, opaque access tokens and client
// secrets are stored: hex SHA-256. They are 256-bit random values, so a
// digest cannot be reversed and a slow KDF would only cost throughput.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// equalDigest compares a presented secret with a stored digest in constant
// time.
func equalDigest(presented, storedDigest string) bool {
	d := digest(presented)
	return subtle.ConstantTimeCompare([]byte(d), []byte(storedDigest)) == 1
}

// DigestSecret is the stored form of a client secret (hex SHA-256), for
// callers that register clients.
func DigestSecret(secret string) string { return digest(secret) }

// NewSecret returns a fresh 256-bit client secret.
func NewSecret() string { return randomToken() }
