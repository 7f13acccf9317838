package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// The gateway decodes the session cookie on every request, and most of a
// session is its two tokens. As JSON, each of their bytes went through the
// JSON scanner twice and was copied on the way; in this format the strings
// are length-prefixed and share one copy, and only the claims, whose values
// can be any JSON, are still JSON.
//
// Format 1: the byte 1, then ID, Subject, IDToken, AccessToken,
// RefreshToken and ProviderSID, then TokenExpiry, CreatedAt and LastSeen
// (time.Time's binary form), then the claims as a JSON object (empty when
// there are none); each field is a uvarint length and its bytes. A session
// written as JSON before this format starts with '{' and still decodes.

// dataFormat1 starts a Data value in format 1.
const dataFormat1 byte = 1

var errDataFormat = errors.New("session: malformed session value")

// appendBinary appends d in format 1 to b.
func (d *Data) appendBinary(b []byte) ([]byte, error) {
	var claims []byte
	if len(d.Claims) > 0 {
		var err error
		if claims, err = json.Marshal(d.Claims); err != nil {
			return nil, err
		}
	}
	n := 1 + 10*binary.MaxVarintLen64 + len(d.ID) + len(d.Subject) + len(d.IDToken) + len(d.AccessToken) +
		len(d.RefreshToken) + len(d.ProviderSID) + 3*16 + len(claims)
	b = slices.Grow(b, n)
	b = append(b, dataFormat1)
	for _, s := range [...]string{d.ID, d.Subject, d.IDToken, d.AccessToken, d.RefreshToken, d.ProviderSID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, t := range [...]time.Time{d.TokenExpiry, d.CreatedAt, d.LastSeen} {
		tb, err := t.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(tb)))
		b = append(b, tb...)
	}
	b = binary.AppendUvarint(b, uint64(len(claims)))
	return append(b, claims...), nil
}

// decodeBinary sets d from src in format 1. Its strings share one copy of
// src, which the caller may reuse afterwards.
func (d *Data) decodeBinary(src []byte) error {
	if len(src) == 0 || src[0] != dataFormat1 {
		return errDataFormat
	}
	all := string(src) // the one copy every string field points into
	off := 1
	field := func() (start, end int, ok bool) {
		n, k := binary.Uvarint(src[off:])
		if k <= 0 || n > uint64(len(src)-off-k) {
			return 0, 0, false
		}
		start = off + k
		end = start + int(n)
		off = end
		return start, end, true
	}
	var next Data
	for _, s := range [...]*string{&next.ID, &next.Subject, &next.IDToken, &next.AccessToken, &next.RefreshToken, &next.ProviderSID} {
		start, end, ok := field()
		if !ok {
			return errDataFormat
		}
		*s = all[start:end]
	}
	for _, t := range [...]*time.Time{&next.TokenExpiry, &next.CreatedAt, &next.LastSeen} {
		start, end, ok := field()
		if !ok {
			return errDataFormat
		}
		if err := t.UnmarshalBinary(src[start:end]); err != nil {
			return errors.Join(errDataFormat, err)
		}
	}
	start, end, ok := field()
	if !ok || off != len(src) {
		return errDataFormat
	}
	if end > start {
		// Into an any, not the map: encoding/json then builds the map
		// directly instead of through reflection, with fewer allocations
		// and the very same values.
		var claims any
		if err := json.Unmarshal(src[start:end], &claims); err != nil {
			return errors.Join(errDataFormat, err)
		}
		m, ok := claims.(map[string]any)
		if !ok {
			return errDataFormat
		}
		next.Claims = m
	}
	*d = next
	return nil
}
