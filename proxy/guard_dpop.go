package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/dpop"
)

// newDPoPVerifier returns the configured verifier, or a default one on the
// guard's clock (with its own replay cache).
func newDPoPVerifier(v *dpop.Verifier, now func() time.Time) (*dpop.Verifier, error) {
	if v == nil {
		v = &dpop.Verifier{Now: now}
	}
	if len(v.SupportedAlgs()) == 0 {
		return nil, errors.New("the DPoP verifier accepts no asymmetric algorithm")
	}
	return v, nil
}

// dpopAlgList is the algs parameter of the DPoP challenge.
func dpopAlgList(v *dpop.Verifier) string { return strings.Join(v.SupportedAlgs(), " ") }

// checkBinding enforces sender-constrained tokens: a DPoP-bound token
// (cnf.jkt) needs the DPoP scheme and a valid proof by that key (RFC 9449
// §7), a certificate-bound one (cnf.x5t#S256) the TLS client certificate it
// names (RFC 8705 §3).
func (g *Guard) checkBinding(r *http.Request, creds credentials, tok *Token) *guardError {
	if tok.x5t != "" && !presentsCertificate(r, tok.x5t) {
		return tokenError("the token is bound to a TLS client certificate the request does not present", nil)
	}
	if tok.JKT == "" {
		if creds.scheme == schemeDPoP {
			// RFC 9449 §7.1: with the DPoP scheme the proof's key must be the
			// one the token is bound to; an unbound token has none.
			return tokenError("the token is not DPoP-bound: present it with the Bearer scheme", nil)
		}
		return nil
	}
	if creds.scheme != schemeDPoP {
		// RFC 9449 §7.2: a DPoP-bound token presented as a bearer token
		// must be refused, or stealing it would be enough to use it.
		return tokenError("the token is DPoP-bound: present it with the DPoP scheme and a proof", nil)
	}
	proof, err := dpop.FromHeader(r.Header)
	if err != nil {
		return dpopFailure(err, "the request has no DPoP proof")
	}
	p, err := g.dpop.Verify(proof, r.Method, g.requestURL(r), creds.token)
	if err != nil {
		return dpopFailure(err, "the DPoP proof cannot be checked against the request URL")
	}
	// RFC 9449 §4.3 point 12: "ensure that the public key to which the
	// access token is bound matches the public key from the DPoP proof".
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(tok.JKT)) != 1 {
		return tokenError("the DPoP proof is not signed by the key the token is bound to", nil)
	}
	return nil
}

// errDPoPBusy answers a proof the replay cache has no room for. The cache
// refuses new proofs rather than forget live ones, which would let a
// flood push out a captured proof to replay it; the proof may well be
// good, so this is a 503 with Retry-After, not a 401 that would make the
// client drop its token.
var errDPoPBusy = &guardError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
	description: "too many DPoP proofs are live; retry in a few seconds with a new proof"}

// dpopFailure renders an error of the dpop package: its code and
// description (which never repeat the proof), errDPoPBusy when the replay
// cache is full, or fallback.
func dpopFailure(err error, fallback string) *guardError {
	if errors.Is(err, dpop.ErrReplayCacheFull) {
		e := *errDPoPBusy
		e.reason, e.cause = "the DPoP replay cache is full", err
		return &e
	}
	var de *dpop.Error
	if errors.As(err, &de) {
		return dpopError(de.Code, de.Description, nil)
	}
	return dpopError(dpop.CodeInvalidProof, fallback, err)
}

// requestURL is the URL the client addressed, for the proof's htu.
func (g *Guard) requestURL(r *http.Request) *url.URL {
	if g.cfg.RequestURL != nil {
		return g.cfg.RequestURL(r)
	}
	if g.cfg.BaseURL == "" {
		return dpop.RequestURL(r)
	}
	u, _ := url.Parse(g.cfg.BaseURL) // checked by NewGuard
	u.Path, u.RawPath = r.URL.Path, r.URL.RawPath
	return u
}

// presentsCertificate reports whether the request's TLS client certificate
// has the SHA-256 thumbprint x5t (base64url).
func presentsCertificate(r *http.Request, x5t string) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(x5t)) == 1
}
