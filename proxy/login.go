package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/portcullis-gw/portcullis/session"
)

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// returnTo is where the browser goes after signing in: the page it asked
// for, on this site (a path, never another origin).
func returnTo(r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "/"
	}
	return r.URL.RequestURI()
}

// safeReturn refuses anything but a local path: no scheme, no host, no
// protocol-relative //host or /\host tricks. A backslash or control
// character anywhere is refused too: http.Redirect cleans the path, so
// "/./\host" would reach the browser as "/\host", which browsers read as
// //host.
func safeReturn(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsFunc(p, unsafeInReturn) {
		return "/"
	}
	if u, err := url.Parse(p); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return p
}

func unsafeInReturn(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }

func (g *Gateway) redirectURI(r *http.Request) string { return requestOrigin(r) + g.cfg.RedirectPath }

// startLogin sends the browser to the provider with a fresh state, nonce
// and PKCE verifier bound to it in a login cookie.
func (g *Gateway) startLogin(w http.ResponseWriter, r *http.Request) {
	p := g.waitProvider(r.Context())
	if p == nil {
		g.unavailable(w, r)
		return
	}
	st := &loginState{State: randomString(), Nonce: randomString(), ReturnTo: returnTo(r), Created: g.now()}
	if !g.cfg.DisablePKCE || g.cfg.ClientSecret == "" {
		st.Verifier = oauth2.GenerateVerifier()
	}
	if err := g.cfg.LoginCookies.write(w, r, st); err != nil {
		g.fail(w, r, http.StatusInternalServerError, "login_cookie", "The sign-in could not be started.", err)
		return
	}
	params := url.Values{
		"response_type": {"code"},
		"client_id":     {g.cfg.ClientID},
		"redirect_uri":  {g.redirectURI(r)},
		"scope":         {strings.Join(g.cfg.Scopes, " ")},
		"state":         {st.State},
		"nonce":         {st.Nonce},
	}
	if g.cfg.Flow == "hybrid" {
		params.Set("response_type", "code id_token")
		params.Set("response_mode", "form_post")
	}
	if st.Verifier != "" {
		params.Set("code_challenge", oauth2.S256ChallengeFromVerifier(st.Verifier))
		params.Set("code_challenge_method", "S256")
	}
	location := p.oauth.Endpoint.AuthURL
	if g.cfg.UseJAR {
		var err error
		if params, err = g.jarParams(params, g.cfg.Issuer); err != nil {
			g.fail(w, r, http.StatusInternalServerError, "jar_failed", "The sign-in request could not be signed.", err)
			return
		}
	}
	if g.cfg.UsePAR || p.meta.RequirePAR {
		requestURI, err := g.push(r.Context(), p, params)
		if err != nil {
			g.fail(w, r, http.StatusBadGateway, "par_failed", "The identity provider refused the sign-in request.", err)
			return
		}
		params = url.Values{"client_id": {g.cfg.ClientID}, "request_uri": {requestURI}}
	}
	sep := "?"
	if strings.Contains(location, "?") {
		sep = "&"
	}
	g.metrics.LoginStarted()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, location+sep+params.Encode(), http.StatusFound)
}

// push sends the authorization request to the provider's PAR endpoint (RFC
// 9126) and returns the request_uri to use instead.
func (g *Gateway) push(ctx context.Context, p *provider, params url.Values) (string, error) {
	if p.meta.PAR == "" {
		return "", errors.New("the provider has no pushed_authorization_request_endpoint")
	}
	body := url.Values{}
	for k, v := range params {
		body[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.meta.PAR, strings.NewReader(body.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if g.cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(g.cfg.ClientID), url.QueryEscape(g.cfg.ClientSecret))
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("PAR endpoint answered %d: %.200s", resp.StatusCode, raw)
	}
	var out struct {
		RequestURI string `json:"request_uri"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.RequestURI == "" {
		return "", fmt.Errorf("PAR response without request_uri: %.200s", raw)
	}
	return out.RequestURI, nil
}

// callback completes a login: it checks the response against the login
// cookie (state), the issuer (RFC 9207), the ID token (signature, iss,
// aud, azp, exp, nonce, c_hash, at_hash), redeems the code and starts the
// session.
func (g *Gateway) callback(w http.ResponseWriter, r *http.Request) {
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			g.fail(w, r, http.StatusBadRequest, "bad_callback", "The sign-in response could not be read.", err)
			return
		}
		params = r.PostForm
	default:
		g.fail(w, r, http.StatusMethodNotAllowed, "bad_callback", "The sign-in response used an unexpected method.", nil)
		return
	}
	st, err := g.cfg.LoginCookies.take(w, r, params.Get("state"))
	if err != nil {
		g.fail(w, r, http.StatusBadRequest, "state_mismatch",
			"This sign-in response does not belong to a sign-in started in this browser, or it was already used or expired.", err)
		return
	}
	if !g.usedStates.add(st.State, st.Created.Add(loginTTL), g.now()) {
		g.fail(w, r, http.StatusBadRequest, "state_mismatch",
			"This sign-in response does not belong to a sign-in started in this browser, or it was already used or expired.",
			errors.New("login state replayed"))
		return
	}
	if e := params.Get("error"); e != "" {
		g.fail(w, r, http.StatusForbidden, providerReason(e), providerMessage(e, params.Get("error_description")), nil, st.ReturnTo)
		return
	}
	p := g.waitProvider(r.Context())
	if p == nil {
		g.unavailable(w, r)
		return
	}
	// RFC 9207 §2.4: when the provider says it sends iss, it must be
	// there and be ours; a present iss is checked whatever the metadata
	// says. A hybrid response carries an ID token whose iss claim is
	// verified below: it identifies the issuer just as well, and providers
	// (oidc-provider among them) leave the parameter out of such responses.
	iss := params.Get("iss")
	issRequired := p.meta.IssParameter && !(g.cfg.Flow == "hybrid" && params.Get("id_token") != "")
	if (issRequired || iss != "") && iss != g.cfg.Issuer {
		g.fail(w, r, http.StatusBadRequest, "iss_mismatch", "The sign-in response came from an unexpected issuer.", fmt.Errorf("iss %q", iss), st.ReturnTo)
		return
	}
	code := params.Get("code")
	if code == "" {
		g.fail(w, r, http.StatusBadRequest, "missing_code", "The sign-in response had no authorization code.", nil, st.ReturnTo)
		return
	}
	ctx := g.clientContext(r.Context())
	var front *oidc.IDToken
	if g.cfg.Flow == "hybrid" {
		if front, err = g.verifyFrontChannel(ctx, p, params.Get("id_token"), code, st.Nonce); err != nil {
			g.fail(w, r, http.StatusBadRequest, "invalid_id_token", "The identity provider's response failed validation.", err, st.ReturnTo)
			return
		}
	}
	oc := p.oauth
	oc.RedirectURL = g.redirectURI(r)
	var opts []oauth2.AuthCodeOption
	if st.Verifier != "" {
		opts = append(opts, oauth2.VerifierOption(st.Verifier))
	}
	tok, err := oc.Exchange(ctx, code, opts...)
	if err != nil {
		g.fail(w, r, http.StatusBadGateway, "token_exchange_failed", "The identity provider did not accept the sign-in.", err, st.ReturnTo)
		return
	}
	sess, err := g.sessionFromTokens(ctx, p, tok, st.Nonce, nil)
	if err != nil {
		g.fail(w, r, http.StatusBadRequest, "invalid_id_token", "The identity provider's ID token failed validation.", err, st.ReturnTo)
		return
	}
	if front != nil && front.Subject != sess.Subject {
		g.fail(w, r, http.StatusBadRequest, "invalid_id_token", "The identity provider's ID tokens disagree.", errors.New("sub mismatch"), st.ReturnTo)
		return
	}
	if err := g.cfg.Sessions.Save(w, r, sess); err != nil {
		g.fail(w, r, http.StatusInternalServerError, "session_save", "The session could not be stored.", err, st.ReturnTo)
		return
	}
	g.metrics.LoginSucceeded()
	g.log.Info("signed in", zap.String("sub", sess.Subject))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, safeReturn(st.ReturnTo), http.StatusSeeOther)
}

// idTokenAlgs are the signature algorithms a front-channel ID token may use.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// verifyFrontChannel checks the ID token of a hybrid response (OIDC Core
// §3.3.2.11): signature, iss, aud, exp, nonce, and c_hash against the code.
func (g *Gateway) verifyFrontChannel(ctx context.Context, p *provider, raw, code, nonce string) (*oidc.IDToken, error) {
	if raw == "" {
		return nil, errors.New("hybrid response without id_token")
	}
	idt, err := p.verifyIDToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := checkNonceAndAzp(idt, nonce, g.cfg.ClientID); err != nil {
		return nil, err
	}
	var claims struct {
		CHash string `json:"c_hash"`
	}
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	if claims.CHash == "" {
		return nil, errors.New("hybrid ID token without c_hash")
	}
	want, err := leftHalfHash(raw, code)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(claims.CHash)) != 1 {
		return nil, errors.New("c_hash does not match the code")
	}
	return idt, nil
}

// leftHalfHash computes c_hash / at_hash for value with the hash of the
// token's signing algorithm (OIDC Core §3.3.2.11).
func leftHalfHash(rawToken, value string) (string, error) {
	jws, err := jose.ParseSignedCompact(rawToken, idTokenAlgs)
	if err != nil {
		return "", err
	}
	var h hash.Hash
	switch alg := jws.Signatures[0].Header.Algorithm; {
	case strings.HasSuffix(alg, "256"):
		h = sha256.New()
	case strings.HasSuffix(alg, "384"):
		h = sha512.New384()
	case strings.HasSuffix(alg, "512"), alg == "EdDSA":
		h = sha512.New()
	default:
		return "", fmt.Errorf("no hash for alg %s", alg)
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

func checkNonceAndAzp(idt *oidc.IDToken, nonce, clientID string) error {
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return errors.New("nonce does not match the login")
	}
	var claims struct {
		Azp string `json:"azp"`
	}
	idt.Claims(&claims)
	// OIDC Core §3.1.3.7: with several audiences azp should be present and
	// must then be our client.
	if (len(idt.Audience) > 1 || claims.Azp != "") && claims.Azp != clientID {
		return fmt.Errorf("azp %q is not this client", claims.Azp)
	}
	return nil
}

// tokenOnlyClaims are dropped from the session: they describe the token,
// not the user.
var tokenOnlyClaims = []string{"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti", "s_hash"}

// sessionFromTokens validates the token response's ID token and builds the
// session. prev is the session being refreshed (nil at login): a refresh
// may omit the ID token, and then keeps the previous identity.
func (g *Gateway) sessionFromTokens(ctx context.Context, p *provider, tok *oauth2.Token, nonce string, prev *session.Data) (*session.Data, error) {
	now := g.now()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		if prev == nil {
			return nil, errors.New("the token response has no id_token (is the openid scope allowed?)")
		}
		next := *prev
		next.AccessToken, next.TokenExpiry = tok.AccessToken, tok.Expiry
		if tok.RefreshToken != "" {
			next.RefreshToken = tok.RefreshToken
		}
		return &next, nil
	}
	idt, err := p.verifyIDToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		if err := checkNonceAndAzp(idt, nonce, g.cfg.ClientID); err != nil {
			return nil, err
		}
	} else if idt.Subject != prev.Subject {
		return nil, errors.New("refreshed ID token names another subject")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, err
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	for _, k := range tokenOnlyClaims {
		delete(claims, k)
	}
	if err := g.mergeUserInfo(ctx, p, tok, idt.Subject, claims); err != nil {
		return nil, err
	}
	sid, _ := claims["sid"].(string)
	sess := &session.Data{
		Subject: idt.Subject, Claims: claims, IDToken: raw, AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, TokenExpiry: tok.Expiry, ProviderSID: sid, CreatedAt: now, LastSeen: now,
	}
	if prev != nil {
		sess.CreatedAt = prev.CreatedAt
		if sess.RefreshToken == "" {
			sess.RefreshToken = prev.RefreshToken
		}
	}
	return sess, nil
}

// mergeUserInfo adds the UserInfo endpoint's claims to those of the ID
// token: providers may release profile, email and group claims only there
// (OIDC Core §5.4 when an access token is issued). OIDC Core §5.3.2: "The
// sub Claim in the UserInfo Response MUST be verified to exactly match the
// sub Claim in the ID Token; if they do not match, the UserInfo Response
// values MUST NOT be used" — a mismatch fails the sign-in. The ID token's
// claims win over UserInfo's: they are signed. An unreachable UserInfo
// endpoint only costs its claims (logged).
func (g *Gateway) mergeUserInfo(ctx context.Context, p *provider, tok *oauth2.Token, subject string, claims map[string]any) error {
	if p.oidc.UserInfoEndpoint() == "" || tok.AccessToken == "" {
		return nil
	}
	ui, err := p.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		g.log.Warn("UserInfo request failed; using the ID token's claims only", zap.String("sub", subject), zap.Error(err))
		return nil
	}
	if ui.Subject != subject {
		return fmt.Errorf("the UserInfo response names subject %q, the ID token %q", ui.Subject, subject)
	}
	extra := map[string]any{}
	if err := ui.Claims(&extra); err != nil {
		g.log.Warn("UserInfo response unreadable; using the ID token's claims only", zap.String("sub", subject), zap.Error(err))
		return nil
	}
	for k, v := range extra {
		if _, have := claims[k]; !have && k != "sub" && !slices.Contains(tokenOnlyClaims, k) {
			claims[k] = v
		}
	}
	return nil
}

// providerReason names a provider error for logs and metrics, from a
// fixed set so a provider cannot blow up the metric's label cardinality.
func providerReason(code string) string {
	switch code {
	case "access_denied", "login_required", "interaction_required", "consent_required", "invalid_request",
		"unauthorized_client", "invalid_scope", "server_error", "temporarily_unavailable", "unsupported_response_type":
		return "provider_" + code
	}
	return "provider_other"
}

func providerMessage(code, description string) string {
	switch code {
	case "access_denied":
		return "The sign-in was cancelled or denied at the identity provider."
	case "login_required", "interaction_required", "consent_required":
		return "The identity provider needs you to sign in again."
	}
	if description != "" && len(description) < 300 {
		return "The identity provider refused the sign-in: " + description
	}
	return "The identity provider refused the sign-in (" + code + ")."
}
