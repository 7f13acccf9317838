// Package session encodes what Portcullis keeps in browser cookies:
// encrypted, authenticated values (gorilla/securecookie) under keys derived
// from configured secrets, with rotation, and chunking for values larger
// than one cookie can hold.
package session

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/securecookie"
)

// Codec encrypts and authenticates cookie values. The first secret encodes;
// every secret decodes, so a new secret can be put first while cookies made
// with the old one keep working until they expire.
type Codec struct {
	codecs []securecookie.Codec
}

// NewCodec derives an AES-256 encryption key and an HMAC-SHA256 key from each
// secret (HKDF-SHA256 with a purpose label, so one configured secret yields
// independent keys for each use) and returns a Codec whose values expire
// after maxAge. Secrets must be at least 32 bytes.
func NewCodec(purpose string, maxAge time.Duration, secrets ...[]byte) (*Codec, error) {
	if len(secrets) == 0 {
		return nil, errors.New("session: at least one secret is required")
	}
	c := &Codec{}
	for i, secret := range secrets {
		if len(secret) < 32 {
			return nil, fmt.Errorf("session: secret %d is %d bytes; use at least 32 random bytes", i, len(secret))
		}
		hashKey, err := hkdf.Key(sha256.New, secret, nil, "portcullis "+purpose+" mac", 32)
		if err != nil {
			return nil, err
		}
		blockKey, err := hkdf.Key(sha256.New, secret, nil, "portcullis "+purpose+" enc", 32)
		if err != nil {
			return nil, err
		}
		sc := securecookie.New(hashKey, blockKey)
		sc.MaxAge(int(maxAge / time.Second))
		sc.MaxLength(0) // chunking, not securecookie, bounds the size
		sc.SetSerializer(serializer{})
		c.codecs = append(c.codecs, sc)
	}
	return c, nil
}

// Encode encrypts and authenticates value under name. name is bound into the
// MAC: a value made for one cookie does not decode as another.
func (c *Codec) Encode(name string, value any) (string, error) {
	return securecookie.EncodeMulti(name, value, c.codecs...)
}

// Decode verifies, decrypts and decodes an encoded value into dst. Expired,
// tampered or foreign values are errors.
func (c *Codec) Decode(name, encoded string, dst any) error {
	return securecookie.DecodeMulti(name, encoded, dst, c.codecs...)
}

// serializer writes a session (*Data) in its binary format (format.go),
// which the gateway decodes on every request at a fraction of the cost of
// JSON, and every other value as JSON. It reads sessions in either form,
// so cookies written as JSON by an earlier version keep working.
type serializer struct{}

func (serializer) Serialize(src any) ([]byte, error) {
	if d, ok := src.(*Data); ok {
		return d.appendBinary(nil)
	}
	return securecookie.JSONEncoder{}.Serialize(src)
}

func (serializer) Deserialize(src []byte, dst any) error {
	if d, ok := dst.(*Data); ok && len(src) > 0 && src[0] == dataFormat1 {
		return d.decodeBinary(src)
	}
	return securecookie.JSONEncoder{}.Deserialize(src, dst)
}
