package flows

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/portcullis-gw/portcullis/store"
)

// The device authorization endpoint (RFC 8628 §3.1, §3.2): a device with
// no browser, or no keyboard worth the name, asks for a device_code to poll
// the token endpoint with and a user_code the user types on another
// device, at the verification page (endpoint_device_verification.go).

// userCodeAlphabet is the character set of user codes, RFC 8628 §6.1's
// base-20 set: upper-case letters only (typed on a phone without modifier
// keys), with the vowels removed so that no code spells a word.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen is the length of a user code: 20^8 ≈ 2^34.6 codes, RFC 8628
// §6.1's example, enough with the verification page's rate limit (§5.1).
const userCodeLen = 8

// maxUserCodeInput bounds what the verification page reads as a user code
// before normalising it.
const maxUserCodeInput = 64

// userCodeDraws bounds how many user codes issuance draws before giving up:
// a collision with a live code is rare, several in a row mean the store is
// failing.
const userCodeDraws = 8

// deviceRecordGrace is how long a device authorization request is kept
// after its code expired, so that a late poll is told expired_token and a
// replayed redemption is still recognised.
const deviceRecordGrace = 10 * time.Minute

// newUserCode draws a uniformly random user code from the system CSPRNG:
// each byte below 240 (12 × 20) gives one character, the others are
// drawn again, so no character is likelier than another.
func newUserCode() string {
	out := make([]byte, 0, userCodeLen)
	buf := make([]byte, 2*userCodeLen)
	for len(out) < userCodeLen {
		rand.Read(buf) // never fails
		for _, b := range buf {
			if b >= 240 {
				continue
			}
			out = append(out, userCodeAlphabet[b%20])
			if len(out) == userCodeLen {
				break
			}
		}
	}
	return string(out)
}

// formatUserCode shows a normalised user code as the user reads it:
// XXXX-XXXX.
func formatUserCode(code string) string {
	if len(code) != userCodeLen {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// normalizeUserCode turns what a user typed into the stored form. RFC 8628
// §6.1 has the server ignore punctuation that is not in the code's
// character set and, as this one has a single case, compare without
// regard to case: dashes, dots and spaces go, lower case is upper case. A
// letter or digit outside the alphabet cannot be part of a code, and such
// input is refused (false) without a look-up.
func normalizeUserCode(input string) (string, bool) {
	if len(input) > maxUserCodeInput {
		return "", false
	}
	var b strings.Builder
	for _, c := range input {
		if unicode.IsPunct(c) || unicode.IsSpace(c) {
			continue
		}
		c = unicode.ToUpper(c)
		if !strings.ContainsRune(userCodeAlphabet, c) {
			return "", false
		}
		b.WriteRune(c)
	}
	if b.Len() != userCodeLen {
		return "", false
	}
	return b.String(), true
}

// deviceAuthorizationResponse is RFC 8628 §3.2.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

func (s *Server) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	resp, err := s.deviceAuthorization(w, r)
	if err != nil {
		// RFC 8628 §3.2: errors are "as described in Section 5.2 of
		// [RFC6749]".
		s.writeJSONError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) (*deviceAuthorizationResponse, error) {
	// RFC 8628 §3.1: the client makes "an HTTP 'POST' request ... using
	// the 'application/x-www-form-urlencoded' format".
	if err := parsePostForm(w, r); err != nil {
		return nil, err
	}
	// "client_id REQUIRED if the client is not authenticating with the
	// authorization server as described in Section 3.2.1. of [RFC6749]."
	// Confidential clients authenticate as at the token endpoint.
	client, err := s.authenticateClient(r)
	if err != nil {
		return nil, err
	}
	if !client.HasGrantType(GrantDeviceCode) {
		return nil, errUnauthorizedClient("client %s is not allowed the device authorization grant", client.ID)
	}
	ctx := r.Context()
	scopes, err := parseScope(r.PostForm.Get("scope"))
	if err != nil {
		return nil, err
	}
	audience := r.PostForm.Get("audience")
	if audience == "" {
		audience = r.PostForm.Get("resource") // RFC 8707
	}
	api, err := s.resolveAudience(ctx, audience, scopes)
	if err != nil {
		return nil, err
	}
	if err := checkUserScopes(client, api, scopes); err != nil {
		return nil, err
	}
	now := s.now()
	interval := s.deviceInterval()
	for range userCodeDraws {
		deviceCode, userCode := randomToken(), newUserCode()
		rec := &store.DeviceCode{
			Digest: digest(deviceCode), UserCode: userCode, ClientID: client.ID, Scopes: scopes, Audience: apiID(api),
			Interval: int64(interval / time.Second), Status: store.DevicePending, GrantID: randomToken()[:22],
			CreatedAt: now, CodeExpiresAt: now.Add(s.cfg.DeviceCodeTTL), ExpiresAt: now.Add(s.cfg.DeviceCodeTTL + deviceRecordGrace),
		}
		// A user code names one live request: the store refuses one
		// already in use and another is drawn.
		err := s.store.PutDeviceCode(ctx, rec)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, errServer(err)
		}
		shown := formatUserCode(userCode)
		return &deviceAuthorizationResponse{
			DeviceCode: deviceCode, UserCode: shown,
			VerificationURI:         s.url(PathDevice),
			VerificationURIComplete: s.url(PathDevice) + "?" + url.Values{"user_code": {shown}}.Encode(),
			ExpiresIn:               int64(s.cfg.DeviceCodeTTL / time.Second),
			Interval:                rec.Interval,
		}, nil
	}
	return nil, errServer(errors.New("no free user code after several draws"))
}

// deviceInterval is the configured polling interval in whole seconds,
// rounded up, at least one.
func (s *Server) deviceInterval() time.Duration {
	return max((s.cfg.DevicePollInterval + time.Second - 1).Truncate(time.Second), time.Second)
}
