package flows

// DPoP (RFC 9449) at the embedded server: the token endpoint binds the
// tokens it issues to the key of a request's proof, and userinfo, a
// protected resource of this server, insists on a proof by that key.

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/dpop"
)

var errDPoPBusy = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable,
	Description: "too many DPoP proofs are live; retry in a few seconds with a new proof"}

// confirmation is the cnf claim of a DPoP-bound JWT access token (RFC 9449
// §6.1, RFC 7800).
type confirmation struct {
	JKT string `json:"jkt"`
}

// tokenRequestProof checks the DPoP proof of a token request: nil without
// a DPoP header (the client asks for a Bearer token). RFC 9449 §5: "The
// DPoP HTTP header field MUST contain a valid DPoP proof JWT. If the DPoP
// proof is invalid, the authorization server issues an error response per
// Section 5.2 of [RFC6749] with invalid_dpop_proof as the value of the
// error parameter." The proof covers POST to the token endpoint's URL as
// discovery publishes it, without ath.
func (s *Server) tokenRequestProof(r *http.Request) (*dpop.Proof, error) {
	proof, err := dpop.FromHeader(r.Header)
	if errors.Is(err, dpop.ErrNoProof) {
		return nil, nil
	}
	if err != nil {
		return nil, dpopError(http.StatusBadRequest, err)
	}
	p, err := s.dpop.Verify(proof, r.Method, s.tokenURL, "")
	if err != nil {
		return nil, dpopError(http.StatusBadRequest, err)
	}
	return p, nil
}

// dpopError turns a dpop failure into an OAuth error with its RFC 9449
// code (invalid_dpop_proof, use_dpop_nonce), or 503 temporarily_unavailable
// when the replay cache is full: the proof may well be good, and the cache
// refuses new proofs rather than forget live ones (which would let a
// flood push out a captured proof to replay it). RFC 9449 has no code for
// that; an invalid_dpop_proof would tell the client its proof is wrong.
func dpopError(status int, err error) *Error {
	if errors.Is(err, dpop.ErrReplayCacheFull) {
		return errDPoPBusy.WithCause(err)
	}
	var de *dpop.Error
	if !errors.As(err, &de) {
		return errServer(err)
	}
	return &Error{Code: de.Code, Status: status, Description: de.Description, Cause: err}
}

// checkPresentation applies RFC 9449 §7 to a token presented at userinfo
// with scheme ("Bearer" or "DPoP").
func (s *Server) checkPresentation(r *http.Request, scheme, tok string, info *tokenInfo) error {
	isDPoP := strings.EqualFold(scheme, dpop.Scheme)
	switch {
	case info.JKT != "" && !isDPoP:
		// §7.2: "such a protected resource MUST reject a DPoP-bound access
		// token received as a bearer token per [RFC6750]."
		return errInvalidToken("the access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof")
	case info.JKT == "" && isDPoP:
		// An unbound token under the DPoP scheme: the client believes it
		// is bound, so something is off; it is a Bearer token.
		return errInvalidToken("the access token is not DPoP-bound: send it with the Bearer scheme")
	case !isDPoP:
		return nil
	}
	// §7.1: "a resource server MUST check that a DPoP proof was also
	// received in the DPoP header field of the HTTP request, check the DPoP
	// proof according to the rules in Section 4.3, and check that the public
	// key of the DPoP proof matches the public key to which the access token
	// is bound per Section 6."
	proof, err := dpop.FromHeader(r.Header)
	if errors.Is(err, dpop.ErrNoProof) {
		return &Error{Code: dpop.CodeInvalidProof, Status: http.StatusUnauthorized, Description: "a DPoP proof is required with a DPoP-bound access token"}
	}
	if err != nil {
		return dpopError(http.StatusUnauthorized, err)
	}
	p, err := s.dpop.Verify(proof, r.Method, s.userinfoURL, tok)
	if err != nil {
		return dpopError(http.StatusUnauthorized, err)
	}
	if p.JKT != info.JKT {
		return errInvalidToken("invalid DPoP key binding: the proof is signed by another key than the token is bound to")
	}
	return nil
}
