package flows

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/session"
	"github.com/portcullis-gw/portcullis/store"
)

// authRequest is a validated authorization request. It travels through the
// login and consent forms encrypted and authenticated (the auth_request
// field), so nothing is stored until a code is issued.
type authRequest struct {
	ClientID            string   `json:"c"`
	RedirectURI         string   `json:"r"`
	RedirectGiven       bool     `json:"rg,omitempty"`
	ResponseType        string   `json:"rt"`
	ResponseMode        string   `json:"rm"`
	State               string   `json:"s,omitempty"`
	Nonce               string   `json:"n,omitempty"`
	CodeChallenge       string   `json:"cc,omitempty"`
	CodeChallengeMethod string   `json:"ccm,omitempty"`
	Scopes              []string `json:"sc,omitempty"`
	Audience            string   `json:"a,omitempty"`
	Prompt              []string `json:"p,omitempty"`
	MaxAge              int      `json:"ma"` // -1 when absent
	LoginHint           string   `json:"lh,omitempty"`
	// LoginDone is set once the user signed in during this request, so
	// prompt=login and max_age do not send them back to the login page.
	LoginDone bool `json:"ld,omitempty"`
	// ConsentFor is the subject the consent page was shown to: a consent
	// form submitted under another session is refused.
	ConsentFor string `json:"cf,omitempty"`
}

const authRequestCookieName = "auth_request"

// pkceChallenge is RFC 7636 §4.2 for S256: 43 base64url characters.
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9\-_]{43}$`)

// maxParamLen bounds free-form parameters (state, nonce, login_hint).
const maxParamLen = 1024

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	// Repeated parameters are refused below: those that name the client
	// and its redirect URI on the error page, the others redirected back
	// to the client.
	var params url.Values
	var err error
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			s.renderError(w, r, errInvalidRequest("the form body could not be parsed"))
			return
		}
		params = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, r, &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "use GET or POST"})
		return
	}
	// A request_uri of this server names a pushed request (RFC 9126); any
	// other is refused below as request_uri_not_supported.
	pushed := strings.HasPrefix(params.Get("request_uri"), requestURIPrefix)
	if pushed {
		if k := repeatedParam(params); k != "" {
			s.renderError(w, r, errRepeated(k))
			return
		}
		if params, err = s.pushedParams(r.Context(), params); err != nil {
			s.renderError(w, r, err)
			return
		}
	}
	client, redirectURI, err := s.checkClientAndRedirect(r.Context(), params)
	if err != nil {
		// RFC 6749 §4.1.2.1: never redirect to an unverified URI.
		s.renderError(w, r, err)
		return
	}
	ar, err := s.parseAuthRequest(r.Context(), client, redirectURI, params)
	// RFC 9126 §5: "the authorization server MUST reject authorization
	// requests from [a client that requires PAR] that don't use PAR".
	if err == nil && client.RequirePushedAuthorizationRequests && !pushed {
		err = errInvalidRequest("client %s must push its authorization requests to %s first (RFC 9126)", client.ID, s.url(PathPAR))
	}
	if err != nil {
		s.redirectError(w, r, ar, err)
		return
	}
	s.continueAuthorization(w, r, client, ar, nil)
}

// checkClientAndRedirect identifies the client and the redirect URI the
// response may go to: an exact match against the registered ones (RFC
// 9700 §4.1.3), or the only registered one when none is given.
func (s *Server) checkClientAndRedirect(ctx context.Context, params url.Values) (*store.Client, string, error) {
	for _, single := range []string{"client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "nonce"} {
		if len(params[single]) > 1 {
			return nil, "", errRepeated(single)
		}
	}
	id := params.Get("client_id")
	if id == "" {
		return nil, "", errInvalidRequest("client_id is required")
	}
	client, err := s.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", errInvalidRequest("client_id %q is not registered", id)
	}
	if err != nil {
		return nil, "", errServer(err)
	}
	given := params.Get("redirect_uri")
	if given == "" {
		if len(client.RedirectURIs) != 1 {
			return nil, "", errInvalidRequest("redirect_uri is required: client %s has several registered", id)
		}
		given = client.RedirectURIs[0]
	} else if !slices.Contains(client.RedirectURIs, given) {
		return nil, "", errInvalidRequest("redirect_uri is not registered for client %s (URIs must match exactly)", id)
	}
	// Registration refuses such URIs; a record written before that rule
	// (or straight into the store) must not send a browser there either.
	if err := CheckRedirectURI(given); err != nil {
		return nil, "", errInvalidRequest("the registered redirect_uri of client %s is not allowed: %v", id, err)
	}
	return client, given, nil
}

// parseAuthRequest validates everything but the client and redirect URI.
// Errors come back with the request (for state and response_mode) so they
// can be redirected to the client.
func (s *Server) parseAuthRequest(ctx context.Context, client *store.Client, redirectURI string, p url.Values) (*authRequest, error) {
	ar := &authRequest{
		ClientID: client.ID, RedirectURI: redirectURI, RedirectGiven: p.Get("redirect_uri") != "",
		ResponseType: p.Get("response_type"), State: p.Get("state"), MaxAge: -1, ResponseMode: "query",
	}
	if len(ar.State) > maxParamLen {
		ar.State = ""
		return ar, errInvalidRequest("state is longer than %d characters", maxParamLen)
	}
	if k := repeatedParam(p); k != "" {
		return ar, errRepeated(k)
	}
	switch mode := p.Get("response_mode"); mode {
	case "", "query":
	case "fragment", "form_post":
		ar.ResponseMode = mode
	default:
		return ar, errInvalidRequest("response_mode %q is not supported", mode)
	}
	if p.Get("request") != "" {
		return ar, oauthErr("request_not_supported", 400, "request objects are not supported")
	}
	if p.Get("request_uri") != "" {
		return ar, oauthErr("request_uri_not_supported", 400, "request_uri is not supported")
	}
	switch {
	case ar.ResponseType == "":
		return ar, errInvalidRequest("response_type is required")
	case ar.ResponseType != "code":
		return ar, errUnsupportedResponseType("response_type %q is not supported", ar.ResponseType)
	case len(client.ResponseTypes) > 0 && !slices.Contains(client.ResponseTypes, "code"),
		!client.HasGrantType(GrantAuthorizationCode):
		return ar, errUnauthorizedClient("client %s may not use the authorization code flow", client.ID)
	}
	scopes, err := parseScope(p.Get("scope"))
	if err != nil {
		return ar, err
	}
	audience := p.Get("audience")
	if audience == "" {
		audience = p.Get("resource")
	}
	api, err := s.resolveAudience(ctx, audience, scopes)
	if err != nil {
		return ar, err
	}
	if err := checkUserScopes(client, api, scopes); err != nil {
		return ar, err
	}
	ar.Scopes, ar.Audience = scopes, apiID(api)
	if err := ar.parsePKCE(client, p); err != nil {
		return ar, err
	}
	ar.Nonce, ar.LoginHint = p.Get("nonce"), p.Get("login_hint")
	if len(ar.Nonce) > maxParamLen || len(ar.LoginHint) > maxParamLen {
		return ar, errInvalidRequest("nonce and login_hint must be at most %d characters", maxParamLen)
	}
	if prompt := p.Get("prompt"); prompt != "" {
		ar.Prompt = strings.Fields(prompt)
		for _, v := range ar.Prompt {
			switch v {
			case "none", "login", "consent", "select_account":
			default:
				return ar, errInvalidRequest("prompt value %q is not supported", v)
			}
		}
		// OIDC Core §3.1.2.1: none with any other value is an error.
		if slices.Contains(ar.Prompt, "none") && len(ar.Prompt) > 1 {
			return ar, errInvalidRequest("prompt=none cannot be combined with other values")
		}
	}
	if ma := p.Get("max_age"); ma != "" {
		n, err := strconv.Atoi(ma)
		if err != nil || n < 0 {
			return ar, errInvalidRequest("max_age must be a non-negative integer")
		}
		ar.MaxAge = n
	}
	return ar, nil
}

// parsePKCE applies RFC 7636 and RFC 9700 §2.1.1: S256 only ("plain" is
// refused), required for public clients and clients that ask for it.
func (ar *authRequest) parsePKCE(client *store.Client, p url.Values) error {
	challenge, method := p.Get("code_challenge"), p.Get("code_challenge_method")
	if challenge == "" {
		if method != "" {
			return errInvalidRequest("code_challenge_method without code_challenge")
		}
		if client.Public() || client.RequirePKCE {
			return errInvalidRequest("PKCE is required for client %s: send code_challenge with code_challenge_method=S256", client.ID)
		}
		return nil
	}
	if method != "S256" {
		return errInvalidRequest("code_challenge_method must be S256 (plain and a missing method are refused)")
	}
	if !pkceChallenge.MatchString(challenge) {
		return errInvalidRequest("code_challenge must be the 43-character base64url SHA-256 of the verifier")
	}
	ar.CodeChallenge, ar.CodeChallengeMethod = challenge, method
	return nil
}

func (ar *authRequest) has(prompt string) bool { return slices.Contains(ar.Prompt, prompt) }

// continueAuthorization moves a validated request on: to the login page,
// to the consent page, or to the client with a code. sess is the session
// just created by a login on this request, if any.
func (s *Server) continueAuthorization(w http.ResponseWriter, r *http.Request, client *store.Client, ar *authRequest, sess *store.Session) {
	ctx := r.Context()
	if sess == nil {
		sess = s.currentSession(r)
	}
	now := s.now()
	needLogin := sess == nil ||
		((ar.has("login") || ar.has("select_account")) && !ar.LoginDone) ||
		(ar.MaxAge >= 0 && !ar.LoginDone && now.Sub(sess.AuthTime) > time.Duration(ar.MaxAge)*time.Second)
	var user *store.User
	if !needLogin {
		u, err := s.store.GetUser(ctx, sess.Subject)
		if err != nil || u.Disabled {
			needLogin = true
		} else {
			user = u
		}
	}
	if needLogin {
		if ar.has("none") {
			s.redirectError(w, r, ar, errLoginRequired("the user is not signed in"))
			return
		}
		s.showLogin(w, r, client, ar, "", http.StatusOK)
		return
	}
	if !client.FirstParty {
		consent, err := s.store.GetConsent(ctx, user.ID, client.ID)
		covered := err == nil && consent.Covers(consentScopes(ar.Audience, ar.Scopes))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.redirectError(w, r, ar, errServer(err))
			return
		}
		askAgain := ar.has("consent") && ar.ConsentFor == ""
		if !covered || askAgain {
			if ar.has("none") {
				s.redirectError(w, r, ar, errConsentRequired("the user has not consented to these scopes"))
				return
			}
			s.showConsent(w, r, client, user, ar)
			return
		}
	}
	s.issueCode(w, r, ar, sess)
}

// issueCode stores a fresh authorization code and sends it to the client.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar *authRequest, sess *store.Session) {
	now := s.now()
	code := randomToken()
	redirect := ""
	if ar.RedirectGiven {
		redirect = ar.RedirectURI
	}
	rec := &store.AuthCode{
		Digest: digest(code), ClientID: ar.ClientID, RedirectURI: redirect,
		CodeChallenge: ar.CodeChallenge, CodeChallengeMethod: ar.CodeChallengeMethod,
		GrantID: randomToken()[:22], Subject: sess.Subject, Scopes: ar.Scopes, Audience: ar.Audience,
		Nonce: ar.Nonce, AuthTime: sess.AuthTime, SessionID: sidOf(sess.ID), CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL),
	}
	if err := s.store.PutCode(r.Context(), rec); err != nil {
		s.redirectError(w, r, ar, errServer(err))
		return
	}
	s.respond(w, r, ar, url.Values{"code": {code}})
}

// redirectError sends an error to the client's verified redirect URI
// (RFC 6749 §4.1.2.1), or shows it when there is none.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, ar *authRequest, err error) {
	oe := asOAuth(err)
	s.logError(r, oe)
	if ar == nil || ar.RedirectURI == "" {
		s.renderError(w, r, oe)
		return
	}
	s.respond(w, r, ar, url.Values{"error": {oe.Code}, "error_description": {oe.Description}})
}

// respond delivers authorization response parameters with the request's
// response mode, adding state and iss (RFC 9207) to every response.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, ar *authRequest, params url.Values) {
	if ar.State != "" {
		params.Set("state", ar.State)
	}
	params.Set("iss", s.issuer)
	switch ar.ResponseMode {
	case "form_post":
		fields := make([]hiddenField, 0, len(params))
		for _, k := range []string{"code", "error", "error_description", "state", "iss"} {
			if v := params.Get(k); v != "" {
				fields = append(fields, hiddenField{k, v})
			}
		}
		nonce := newNonce()
		// The redirect URI was matched exactly against the registered ones.
		s.render(w, http.StatusOK, "form_post.html", nonce, formPostPage{RedirectURI: template.URL(ar.RedirectURI), Params: fields, CSPNonce: nonce})
	case "fragment":
		u := strings.SplitN(ar.RedirectURI, "#", 2)[0]
		redirectTo(w, u+"#"+params.Encode())
	default:
		u, _ := url.Parse(ar.RedirectURI)
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		redirectTo(w, u.String())
	}
}

func redirectTo(w http.ResponseWriter, location string) {
	h := w.Header()
	h.Set("Location", location)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusSeeOther)
}

// currentSession returns the browser's live SSO session, or nil.
func (s *Server) currentSession(r *http.Request) *store.Session {
	raw, err := session.ReadChunked(r, s.ssoCookie)
	if err != nil {
		return nil
	}
	var id string
	if err := s.cookies.Decode(s.ssoCookie.Name, raw, &id); err != nil || id == "" {
		return nil
	}
	sess, err := s.store.GetSession(r.Context(), id)
	if err != nil {
		return nil
	}
	return sess
}

func (s *Server) encodeAuthRequest(ar *authRequest) (string, error) {
	return s.requests.Encode(authRequestCookieName, ar)
}

func (s *Server) decodeAuthRequest(encoded string) (*authRequest, error) {
	ar := new(authRequest)
	if err := s.requests.Decode(authRequestCookieName, encoded, ar); err != nil {
		return nil, err
	}
	return ar, nil
}
