package flows

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/keys"
	"github.com/portcullis-gw/portcullis/store"
)

// tokenInfo is what the server knows about a token it issued.
type tokenInfo struct {
	Kind      string // "access_token" or "refresh_token"
	ClientID  string
	Subject   string
	Scopes    []string
	Audience  []string
	JTI       string
	IssuedAt  time.Time
	ExpiresAt time.Time
	AuthTime  time.Time
	// JKT is the thumbprint of the DPoP key an access token is bound to.
	JKT string
}

// looksLikeJWT distinguishes our JWTs from our opaque tokens (43-character
// base64url without dots).
func looksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// lookupAccessToken validates an access token this server issued: a JWT is
// verified (signature, typ, iss, exp) and checked against revoked jtis; an
// opaque token is looked up by digest.
func (s *Server) lookupAccessToken(ctx context.Context, tok string) (*tokenInfo, error) {
	now := s.now()
	if !looksLikeJWT(tok) {
		at, err := s.store.GetAccessToken(ctx, digest(tok))
		if err != nil {
			return nil, err
		}
		return &tokenInfo{Kind: "access_token", ClientID: at.ClientID, Subject: at.Subject, Scopes: at.Scopes,
			Audience: strings.Fields(at.Audience), JTI: at.JTI, IssuedAt: at.IssuedAt, ExpiresAt: at.ExpiresAt, JKT: at.JKT}, nil
	}
	var c accessClaims
	typ, err := s.keys.Verify(tok, &c)
	if err != nil {
		if errors.Is(err, keys.ErrUnknownKey) {
			return nil, store.ErrNotFound
		}
		return nil, store.ErrNotFound
	}
	exp := time.Unix(c.Expiry, 0)
	if typ != "at+jwt" || c.Issuer != s.issuer || !now.Before(exp) || c.JTI == "" {
		return nil, store.ErrNotFound
	}
	revoked, err := s.store.IsJTIRevoked(ctx, c.JTI)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, store.ErrNotFound
	}
	info := &tokenInfo{Kind: "access_token", ClientID: c.ClientID, Subject: c.Subject, Scopes: strings.Fields(c.Scope),
		Audience: c.Audience, JTI: c.JTI, IssuedAt: time.Unix(c.IssuedAt, 0), ExpiresAt: exp}
	if c.AuthTime != 0 {
		info.AuthTime = time.Unix(c.AuthTime, 0)
	}
	if c.Cnf != nil {
		if c.Cnf.JKT == "" {
			return nil, store.ErrNotFound // a binding to nothing: not a token this server issued
		}
		info.JKT = c.Cnf.JKT
	}
	return info, nil
}

// bearerToken extracts the access token of a userinfo request and the
// scheme it came with: RFC 6750 §2.1 header ("Bearer") or RFC 9449 §7.1
// header ("DPoP"), or RFC 6750 §2.2 form body ("Bearer").
func bearerToken(r *http.Request) (tok, scheme string, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		isBearer, isDPoP := strings.EqualFold(scheme, "Bearer"), strings.EqualFold(scheme, dpop.Scheme)
		if !ok || !(isBearer || isDPoP) || strings.TrimSpace(tok) == "" {
			return "", "Bearer", errInvalidRequest("the Authorization header must be \"Bearer <token>\" or \"DPoP <token>\"")
		}
		if isDPoP {
			return strings.TrimSpace(tok), dpop.Scheme, nil
		}
		return strings.TrimSpace(tok), "Bearer", nil
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if tok := r.PostForm.Get("access_token"); tok != "" {
			return tok, "Bearer", nil
		}
	}
	return "", "Bearer", &Error{Code: "", Status: http.StatusUnauthorized, Description: "an access token is required"}
}

// serveUserinfo is OIDC Core §5.3.
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.writeBearerError(w, r, &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "use GET or POST"})
		return
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if _, err := readForm(w, r); err != nil {
			s.writeBearerError(w, r, err)
			return
		}
	}
	tok, scheme, err := bearerToken(r)
	// RFC 9449 §7.2: the challenge of the scheme the client used carries the
	// error.
	fail := func(err error) { s.writeAuthError(w, r, scheme, err) }
	if err != nil {
		fail(err)
		return
	}
	info, err := s.lookupAccessToken(r.Context(), tok)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			fail(errInvalidToken("the access token is invalid, expired or revoked"))
			return
		}
		fail(errServer(err))
		return
	}
	if err := s.checkPresentation(r, scheme, tok, info); err != nil {
		s.writeAuthError(w, r, dpop.Scheme, err)
		return
	}
	if !hasScope(info.Scopes, "openid") || info.Subject == "" || info.Subject == ClientSubject(info.ClientID) {
		fail(errInsufficientScope("userinfo needs a user's access token with the openid scope"))
		return
	}
	user, err := s.store.GetUser(r.Context(), info.Subject)
	if err != nil || user.Disabled {
		fail(errInvalidToken("the user of this token no longer exists"))
		return
	}
	claims := userClaims(user, info.Scopes)
	claims["sub"] = user.ID
	writeJSON(w, http.StatusOK, claims)
}

// writeBearerError answers a protected-resource request per RFC 6750 §3.
func (s *Server) writeBearerError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeAuthError(w, r, "Bearer", err)
}

// challengeText fits a description to RFC 6750 §3's error_description
// syntax (%x20-21 / %x23-5B / %x5D-7E): a description may quote what the
// client sent, and no control character, quote or backslash of it may
// reach the header.
func challengeText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// writeAuthError answers a protected-resource request with a challenge of
// scheme: RFC 6750 §3 for Bearer, RFC 9449 §7.1 for DPoP (which adds the
// accepted proof algorithms).
func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, scheme string, err error) {
	oe := asOAuth(err)
	s.logError(r, oe)
	if oe.Status == http.StatusServiceUnavailable {
		// Not a challenge: the credentials may well be good.
		w.Header().Set("Retry-After", retryAfterBusy)
		writeJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
		return
	}
	challenge := scheme + ` realm="` + s.issuer + `"`
	if scheme == dpop.Scheme {
		challenge += `, algs="` + strings.Join(s.dpop.SupportedAlgs(), " ") + `"`
	}
	if oe.Code != "" {
		challenge += `, error="` + oe.Code + `", error_description="` + challengeText(oe.Description) + `"`
	}
	if oe.Code == "insufficient_scope" {
		challenge += `, scope="openid"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if oe.Code == "" {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(oe.Status)
		return
	}
	writeJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
}
