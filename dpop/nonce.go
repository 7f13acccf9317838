package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// DefaultNonceWindow is the nonce window of NewNonceSource(0).
const DefaultNonceWindow = 5 * time.Minute

// NonceSource issues and checks stateless server nonces (RFC 9449 §8, §9):
// the HMAC-SHA256, under a random key, of the number of the current time
// window. A nonce is valid in the window it was issued in and the next one,
// so for between one and two windows. §8: "Nonce values MUST be
// unpredictable": without the key they are.
//
// Nonces from NewNonceSource are only valid at the process that issued
// them; instances behind one endpoint share a key with
// NewNonceSourceWithKey.
type NonceSource struct {
	key    []byte
	window time.Duration
}

// nonceBytes is the MAC length kept: 144 bits, 24 base64url characters.
const nonceBytes = 18

// NewNonceSource returns a source with a fresh random key and the given
// window (DefaultNonceWindow when window <= 0).
func NewNonceSource(window time.Duration) *NonceSource {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand, Go 1.24+)
	n, _ := NewNonceSourceWithKey(key, window)
	return n
}

// NewNonceSourceWithKey returns a source with a shared key of at least 32
// bytes, so that every instance behind one endpoint accepts the others'
// nonces.
func NewNonceSourceWithKey(key []byte, window time.Duration) (*NonceSource, error) {
	if len(key) < 32 {
		return nil, errors.New("dpop: a nonce key needs at least 32 bytes")
	}
	if window <= 0 {
		window = DefaultNonceWindow
	}
	return &NonceSource{key: append([]byte(nil), key...), window: window}, nil
}

// Nonce returns the nonce for now, for a DPoP-Nonce header.
func (n *NonceSource) Nonce() string { return n.NonceAt(time.Now()) }

// NonceAt returns the nonce for the window t falls in.
func (n *NonceSource) NonceAt(t time.Time) string { return n.forWindow(n.windowOf(t)) }

// Valid reports whether nonce was issued in the current or the previous
// window.
func (n *NonceSource) Valid(nonce string) bool { return n.ValidAt(nonce, time.Now()) }

// ValidAt is Valid at time t.
func (n *NonceSource) ValidAt(nonce string, t time.Time) bool {
	w := n.windowOf(t)
	cur := subtle.ConstantTimeCompare([]byte(nonce), []byte(n.forWindow(w)))
	prev := subtle.ConstantTimeCompare([]byte(nonce), []byte(n.forWindow(w-1)))
	return cur|prev == 1
}

func (n *NonceSource) windowOf(t time.Time) int64 {
	return t.UnixNano() / int64(n.window)
}

func (n *NonceSource) forWindow(w int64) string {
	mac := hmac.New(sha256.New, n.key)
	var b [len("dpop-nonce") + 8]byte
	copy(b[:], "dpop-nonce")
	binary.BigEndian.PutUint64(b[len("dpop-nonce"):], uint64(w))
	mac.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:nonceBytes])
}
