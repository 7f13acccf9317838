package flows

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/argon2"

	"github.com/portcullis-gw/portcullis/session"
	"github.com/portcullis-gw/portcullis/store"
)

// showLogin renders the login page for ar.
func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, client *store.Client, ar *authRequest, msg string, status int) {
	encoded, err := s.encodeAuthRequest(ar)
	if err != nil {
		s.renderError(w, r, errServer(err))
		return
	}
	nonce := newNonce()
	s.render(w, status, "login.html", nonce, loginPage{
		page:       s.newPage("Sign in", nonce),
		ClientName: clientName(client), Error: msg, Action: s.pathPrefix + PathLogin,
		CSRFToken: s.csrfToken(w, r), AuthRequest: encoded, Username: ar.LoginHint,
	})
}

func clientName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// formAuthRequest checks the CSRF token and decodes the authorization
// request a login or consent form carries, with its client.
func (s *Server) formAuthRequest(w http.ResponseWriter, r *http.Request) (*store.Client, *authRequest, error) {
	if _, err := readForm(w, r); err != nil {
		return nil, nil, err
	}
	if !s.checkCSRF(r) {
		return nil, nil, &Error{Code: "invalid_request", Status: http.StatusForbidden,
			Description: "the form expired or did not come from this site; go back to the application and sign in again"}
	}
	ar, err := s.decodeAuthRequest(r.PostForm.Get("auth_request"))
	if err != nil {
		return nil, nil, errInvalidRequest("the sign-in request expired or was tampered with; start again from the application").WithCause(err)
	}
	client, err := s.store.GetClient(r.Context(), ar.ClientID)
	if err != nil {
		return nil, nil, errInvalidRequest("the client of this request no longer exists")
	}
	return client, ar, nil
}

// serveLogin checks a username and password posted from the login page.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	client, ar, err := s.formAuthRequest(w, r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	ar.LoginHint = username
	user, msg, status := s.signInUser(r, username, password)
	if user == nil {
		s.showLogin(w, r, client, ar, msg, status)
		return
	}
	sess, err := s.startSession(w, r, user)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.log.Info("signed in", zap.String("sub", user.ID), zap.String("client", client.ID))
	ar.LoginDone = true
	s.continueAuthorization(w, r, client, ar, sess)
}

// signInUser checks a username and password posted from a sign-in form
// (the login page, the device verification page) under the login
// throttle. On failure the user is nil and msg and status are what to show
// with the form again.
func (s *Server) signInUser(r *http.Request, username, password string) (user *store.User, msg string, status int) {
	ip := clientIP(r)
	admitted, wait, done := s.throttle.Begin(username, ip)
	if !admitted {
		s.log.Warn("sign-in throttled", zap.String("username", username), zap.String("ip", ip))
		return nil, fmt.Sprintf("Too many failed attempts. Try again in %s.", roundUp(wait)), http.StatusTooManyRequests
	}
	user, err := s.CheckPassword(r, username, password)
	done(err == nil)
	if err != nil {
		s.log.Info("sign-in failed", zap.String("username", username), zap.String("ip", ip))
		return nil, "The username or password is incorrect.", http.StatusUnauthorized
	}
	return user, "", http.StatusOK
}

// startSession creates a new SSO session for user, signed in by password
// just now, and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, user *store.User) (*store.Session, error) {
	now := s.now()
	sess := &store.Session{ID: randomToken(), Subject: user.ID, AuthTime: now, AMR: []string{"pwd"}, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.store.PutSession(r.Context(), sess); err != nil {
		return nil, errServer(err)
	}
	// A new session id on every login: no session fixation.
	encoded, err := s.cookies.Encode(s.ssoCookie.Name, sess.ID)
	if err != nil {
		return nil, errServer(err)
	}
	session.WriteChunked(w, r, s.ssoCookie, encoded)
	return sess, nil
}

func roundUp(d time.Duration) time.Duration {
	return d.Round(time.Second) + time.Second
}

// dummyHash is compared against when the user does not exist, so a failed
// login takes as long for unknown users as for wrong passwords. Only its
// parameters matter: they set the cost of the comparison, which never
// matches (the key is zeros). It is written out rather than hashed, since
// hashing at package init cost every process linking this package, with
// Portcullis configured or not, 64 MiB and a few hundred milliseconds.
var dummyHash = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
	b64(make([]byte, 16)), b64(make([]byte, argonKeyLen)))

// ErrBadCredentials means the username or password is wrong; callers never
// learn which.
var ErrBadCredentials = errors.New("invalid username or password")

// CheckPassword verifies a user's password in constant time with respect to
// whether the user exists, and refuses disabled users.
func (s *Server) CheckPassword(r *http.Request, username, password string) (*store.User, error) {
	// Each argon2id run takes 64 MiB: bound how many run at once.
	select {
	case s.hashSlots <- struct{}{}:
		defer func() { <-s.hashSlots }()
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	user, err := s.store.GetUser(r.Context(), username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hash := dummyHash
	if user != nil && user.PasswordHash != "" {
		hash = user.PasswordHash
	}
	ok, verr := VerifyPassword(hash, password)
	if user == nil || user.Disabled || user.PasswordHash == "" || verr != nil || !ok {
		return nil, ErrBadCredentials
	}
	return user, nil
}

// clientIP is the peer address. Behind a trusted proxy, Caddy has already
// rewritten RemoteAddr from its trusted_proxies setting.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serveConsent records the user's decision on the consent page.
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	client, ar, err := s.formAuthRequest(w, r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	sess := s.currentSession(r)
	if sess == nil || ar.ConsentFor == "" || sess.Subject != ar.ConsentFor {
		// The consent was shown to someone else, or the session ended.
		s.renderError(w, r, errInvalidRequest("your session changed or expired; start again from the application"))
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
	case "deny":
		s.redirectError(w, r, ar, errAccessDenied("the user denied the request"))
		return
	default:
		s.renderError(w, r, errInvalidRequest("decision must be allow or deny"))
		return
	}
	ctx := r.Context()
	scopes := consentScopes(ar.Audience, ar.Scopes)
	if prev, err := s.store.GetConsent(ctx, sess.Subject, client.ID); err == nil {
		for _, sc := range prev.Scopes {
			if !hasScope(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	if err := s.store.PutConsent(ctx, &store.Consent{Subject: sess.Subject, ClientID: client.ID, Scopes: scopes, CreatedAt: s.now()}); err != nil {
		s.redirectError(w, r, ar, errServer(err))
		return
	}
	s.issueCode(w, r, ar, sess)
}

// showConsent renders the consent page, binding the form to this user.
func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, client *store.Client, user *store.User, ar *authRequest) {
	ar.ConsentFor = user.ID
	encoded, err := s.encodeAuthRequest(ar)
	if err != nil {
		s.renderError(w, r, errServer(err))
		return
	}
	apiName, views := s.scopeViews(r.Context(), ar.Audience, ar.Scopes)
	name := user.Name
	if name == "" {
		name = user.Username
	}
	nonce := newNonce()
	s.render(w, http.StatusOK, "consent.html", nonce, consentPage{
		page: s.newPage("Authorize "+clientName(client), nonce), ClientName: clientName(client), UserName: name,
		APIName: apiName, Action: s.pathPrefix + PathConsent, CSRFToken: s.csrfToken(w, r), AuthRequest: encoded, Scopes: views,
	})
}

// scopeViews names the API of a request and describes its scopes in plain
// words, for the consent and device confirmation pages.
func (s *Server) scopeViews(ctx context.Context, audience string, scopes []string) (apiName string, views []scopeView) {
	views = make([]scopeView, 0, len(scopes))
	if api, err := s.apiOrNil(ctx, audience); err == nil && api != nil {
		apiName = api.Name
		if apiName == "" {
			apiName = api.Identifier
		}
	}
	for _, sc := range scopes {
		desc := scopeDescription(sc)
		if !isStandardScope(sc) && apiName != "" {
			desc = "A permission on " + apiName
		}
		views = append(views, scopeView{Name: sc, Description: desc})
	}
	return apiName, views
}
