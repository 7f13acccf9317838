package flows

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/store"
)

// TokenResponse is the successful token endpoint response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	IDToken         string `json:"id_token,omitempty"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// issueParams describe the tokens one grant produces.
type issueParams struct {
	Client    *store.Client
	User      *store.User // nil for client-only grants
	Scopes    []string
	API       *store.API // nil: the token is only good at userinfo
	GrantID   string     // empty for client_credentials
	AuthTime  time.Time
	SessionID string
	Nonce     string
	// GrantedScopes are the scopes the grant (and so its refresh tokens)
	// carries; Scopes may be narrower for this access token (RFC 6749 §6).
	// Empty means Scopes.
	GrantedScopes []string
	// WithIDToken asks for an ID token (openid scope and a user).
	WithIDToken bool
	// DPoPJKT, when set, is the thumbprint of the token request's DPoP key:
	// the access token is bound to it, and so is a public client's refresh
	// token (RFC 9449 §5).
	DPoPJKT string
	// AuthReqID, when set, is the auth_req_id of a CIBA request whose
	// tokens are pushed: the ID token then carries it and the hash of the
	// refresh token (CIBA Core §10.3.1).
	AuthReqID string
}

// issuedAccess is an access token and what the store needs to track it.
type issuedAccess struct {
	token  string
	record *store.AccessToken // nil for an untracked JWT
	exp    time.Time
}

// accessClaims are the claims of an RFC 9068 JWT access token.
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	JTI      string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	AuthTime int64    `json:"auth_time,omitempty"`
	// Cnf binds a DPoP-bound token to its key (RFC 9449 §6.1).
	Cnf *confirmation `json:"cnf,omitempty"`
}

func (s *Server) accessAudience(api *store.API) []string {
	if api == nil {
		return []string{s.url(PathUserinfo)}
	}
	return []string{api.Identifier}
}

func (s *Server) accessTTL(api *store.API) time.Duration {
	if api != nil && api.AccessTokenLifetime > 0 {
		return time.Duration(api.AccessTokenLifetime) * time.Second
	}
	return s.cfg.AccessTokenTTL
}

// ClientSubjectSuffix ends the subject of every token a client obtains
// for itself (client credentials), as Auth0 does: "<client_id>@clients".
// Usernames may not end with it, so an API never mistakes a machine token
// for a user's (RFC 9068 §5).
const ClientSubjectSuffix = "@clients"

// ClientSubject is the sub claim of tokens a client obtains for itself.
func ClientSubject(clientID string) string { return clientID + ClientSubjectSuffix }

// newAccessToken issues an access token as an RFC 9068 JWT or, for APIs
// that ask for it, an opaque token kept in the store.
func (s *Server) newAccessToken(p issueParams, now time.Time) (*issuedAccess, error) {
	exp := now.Add(s.accessTTL(p.API))
	sub := ClientSubject(p.Client.ID)
	if p.User != nil {
		sub = p.User.ID
	}
	jti := randomToken()[:22]
	rec := &store.AccessToken{
		GrantID: p.GrantID, ClientID: p.Client.ID, Subject: sub, Scopes: p.Scopes,
		Audience: strings.Join(s.accessAudience(p.API), " "), JTI: jti, IssuedAt: now, ExpiresAt: exp,
		JKT: p.DPoPJKT,
	}
	if p.API != nil && p.API.TokenFormat == "opaque" {
		tok := randomToken()
		rec.Digest = digest(tok)
		return &issuedAccess{token: tok, record: rec, exp: exp}, nil
	}
	claims := accessClaims{
		Issuer: s.issuer, Subject: sub, Audience: s.accessAudience(p.API), ClientID: p.Client.ID,
		Scope: strings.Join(p.Scopes, " "), JTI: jti, IssuedAt: now.Unix(), Expiry: exp.Unix(),
	}
	if p.User != nil && !p.AuthTime.IsZero() {
		claims.AuthTime = p.AuthTime.Unix()
	}
	if p.DPoPJKT != "" {
		claims.Cnf = &confirmation{JKT: p.DPoPJKT}
	}
	tok, err := s.keys.Sign(claims, "at+jwt")
	if err != nil {
		return nil, err
	}
	out := &issuedAccess{token: tok, exp: exp}
	if p.GrantID != "" {
		// Tracked so that revoking the grant revokes this jti.
		rec.Digest = store.SelfContainedPrefix + jti
		out.record = rec
	}
	return out, nil
}

// newIDToken issues an ID token (OIDC Core §2) with the claims the scopes
// release.
func (s *Server) newIDToken(p issueParams, accessToken, refreshToken string, now time.Time) (string, error) {
	claims := map[string]any{
		"iss": s.issuer, "sub": p.User.ID, "aud": p.Client.ID, "azp": p.Client.ID,
		"iat": now.Unix(), "exp": now.Add(s.cfg.IDTokenTTL).Unix(),
		"at_hash": halfHash(s.keys.Alg(), accessToken),
	}
	if !p.AuthTime.IsZero() {
		claims["auth_time"] = p.AuthTime.Unix()
	}
	if p.Nonce != "" {
		claims["nonce"] = p.Nonce
	}
	if p.SessionID != "" {
		claims["sid"] = p.SessionID
	}
	for k, v := range userClaims(p.User, p.Scopes) {
		claims[k] = v
	}
	if p.AuthReqID != "" {
		// CIBA Core §10.3.1: in Push mode the ID token "MUST contain" the
		// urn:openid:params:jwt:claim:auth_req_id claim and, with a refresh
		// token, urn:openid:params:jwt:claim:rt_hash, computed as at_hash.
		claims[claimAuthReqID] = p.AuthReqID
		if refreshToken != "" {
			claims[claimRTHash] = halfHash(s.keys.Alg(), refreshToken)
		}
	}
	return s.keys.Sign(claims, "JWT")
}

// The claims of a pushed CIBA ID token (CIBA Core §10.3.1).
const (
	claimAuthReqID = "urn:openid:params:jwt:claim:auth_req_id"
	claimRTHash    = "urn:openid:params:jwt:claim:rt_hash"
)

// halfHash is at_hash / c_hash (OIDC Core §3.1.3.6): the left half of the
// hash the signing algorithm uses, base64url. ES256, RS256 and PS256 use
// SHA-256; Ed25519 (EdDSA) uses SHA-512.
func halfHash(alg, v string) string {
	var sum []byte
	if alg == "EdDSA" {
		h := sha512.Sum512([]byte(v))
		sum = h[:]
	} else {
		h := sha256.Sum256([]byte(v))
		sum = h[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// userClaims are the claims released for scopes (OIDC Core §5.4).
func userClaims(u *store.User, scopes []string) map[string]any {
	out := map[string]any{}
	if hasScope(scopes, "profile") {
		out["preferred_username"] = u.Username
		if u.Name != "" {
			out["name"] = u.Name
		}
		for k, v := range u.Claims {
			if _, reserved := reservedClaims[k]; !reserved {
				out[k] = v
			}
		}
	}
	if hasScope(scopes, "email") && u.Email != "" {
		out["email"] = u.Email
		out["email_verified"] = u.EmailVerified
	}
	if hasScope(scopes, "groups") {
		groups := u.Groups
		if groups == nil {
			groups = []string{}
		}
		out["groups"] = groups
	}
	return out
}

// reservedClaims cannot be overridden by a user's custom claims.
var reservedClaims = map[string]struct{}{
	"iss": {}, "sub": {}, "aud": {}, "exp": {}, "iat": {}, "nbf": {}, "jti": {}, "azp": {}, "nonce": {},
	"auth_time": {}, "at_hash": {}, "c_hash": {}, "sid": {}, "scope": {}, "client_id": {}, "cnf": {},
	claimAuthReqID: {}, claimRTHash: {},
}

// issue creates the tokens for p. refresh says whether a refresh token is
// issued; grant, when not nil, is stored with the first tokens in one
// transaction. rotateFrom, when set, is the digest of the refresh token
// being rotated.
func (s *Server) issue(ctx context.Context, p issueParams, grant *store.Grant, refresh bool, rotateFrom string) (*TokenResponse, error) {
	now := s.now()
	at, err := s.newAccessToken(p, now)
	if err != nil {
		return nil, errServer(err)
	}
	resp := &TokenResponse{
		AccessToken: at.token, TokenType: "Bearer", ExpiresIn: int64(at.exp.Sub(now) / time.Second),
		Scope: strings.Join(p.Scopes, " "),
	}
	if p.DPoPJKT != "" {
		// RFC 9449 §5: "A token_type of DPoP MUST be included in the access
		// token response to signal to the client that the access token was
		// bound to its DPoP key".
		resp.TokenType = dpop.Scheme
	}
	if refresh {
		// Drawn before the ID token, which may carry its hash (rt_hash).
		resp.RefreshToken = randomToken()
	}
	if p.WithIDToken && p.User != nil {
		if resp.IDToken, err = s.newIDToken(p, at.token, resp.RefreshToken, now); err != nil {
			return nil, errServer(err)
		}
	}
	var rt *store.RefreshToken
	if refresh {
		exp := now.Add(s.cfg.RefreshTokenTTL)
		if grant != nil {
			exp = grant.ExpiresAt
		}
		granted := p.GrantedScopes
		if len(granted) == 0 {
			granted = p.Scopes
		}
		rt = &store.RefreshToken{
			Digest: digest(resp.RefreshToken), GrantID: p.GrantID, ClientID: p.Client.ID, Subject: p.User.ID,
			Scopes: granted, Audience: apiID(p.API), CreatedAt: now, ExpiresAt: exp,
		}
		// RFC 9449 §5: "When an authorization server supporting DPoP issues
		// a refresh token to a public client that presents a valid DPoP
		// proof at the token endpoint, the refresh token MUST be bound to
		// the respective public key." Confidential clients' refresh tokens
		// are not: they are "already sender-constrained" by client
		// authentication.
		if p.Client.Public() {
			rt.JKT = p.DPoPJKT
		}
	}
	switch {
	case rotateFrom != "":
		if _, err := s.store.RotateRefreshToken(ctx, rotateFrom, rt, at.record); err != nil {
			return nil, s.refreshRotationError(ctx, p.GrantID, err)
		}
	case grant != nil:
		if err := s.store.IssueGrant(ctx, grant, rt, at.record); err != nil {
			if errors.Is(err, store.ErrRevoked) {
				return nil, errInvalidGrant("the code was replayed while it was being redeemed; the grant is revoked")
			}
			return nil, errServer(err)
		}
	case at.record != nil:
		if err := s.store.PutAccessToken(ctx, at.record); err != nil {
			return nil, errServer(err)
		}
	}
	return resp, nil
}

// refreshRotationError maps a failed rotation to its OAuth error. A reused
// refresh token means it leaked, or two parties hold it: RFC 9700 §4.14.2
// says to revoke the whole family, so the grant goes.
func (s *Server) refreshRotationError(ctx context.Context, grantID string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	if errors.Is(err, store.ErrAlreadyUsed) {
		if rerr := s.store.RevokeGrant(ctx, grantID); rerr != nil {
			return errServer(rerr)
		}
		s.log.Warn("refresh token reuse detected; grant revoked", zap.String("grant", grantID))
		return errInvalidGrant("the refresh token was already used; every token of this grant is revoked")
	}
	return errServer(err)
}

func apiID(api *store.API) string {
	if api == nil {
		return ""
	}
	return api.Identifier
}
