package flows

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/session"
	"github.com/portcullis-gw/portcullis/store"
)

// serveEndSession is OpenID Connect RP-Initiated Logout 1.0. With a valid
// id_token_hint the session ends at once; without one the user confirms on
// a CSRF-protected page, so another site cannot sign users out. The
// post_logout_redirect_uri must exactly match one the client registered:
// no open redirect.
func (s *Server) serveEndSession(w http.ResponseWriter, r *http.Request) {
	params, err := requestParams(w, r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	hintSub, clientID, err := s.logoutClient(r, params)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	redirect := params.Get("post_logout_redirect_uri")
	if redirect != "" {
		if clientID == "" {
			s.renderError(w, r, errInvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id to identify the client"))
			return
		}
		client, err := s.store.GetClient(r.Context(), clientID)
		if err != nil || !slices.Contains(client.PostLogoutRedirectURIs, redirect) || CheckRedirectURI(redirect) != nil {
			s.renderError(w, r, errInvalidRequest("post_logout_redirect_uri is not registered for this client"))
			return
		}
	}
	sess := s.currentSession(r)
	confirmed := r.Method == http.MethodPost && params.Get("confirm") == "yes" && s.checkCSRF(r)
	hinted := hintSub != "" && (sess == nil || sess.Subject == hintSub)
	if sess != nil && !confirmed && !hinted {
		s.showLogoutConfirm(w, r, params)
		return
	}
	if sess != nil {
		if err := s.store.DeleteSession(r.Context(), sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.renderError(w, r, errServer(err))
			return
		}
		s.log.Info("signed out", zap.String("sub", sess.Subject))
		go s.notifyBackchannelLogout(sess)
	}
	session.Clear(w, r, s.ssoCookie)
	if redirect != "" {
		u, _ := url.Parse(redirect)
		if state := params.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		redirectTo(w, u.String())
		return
	}
	nonce := newNonce()
	s.render(w, http.StatusOK, "loggedout.html", nonce, struct{ page }{s.newPage("Signed out", nonce)})
}

// logoutClient reads id_token_hint (an ID token we issued; expiry ignored,
// as the spec allows) and client_id, which must agree.
func (s *Server) logoutClient(r *http.Request, params url.Values) (subject, clientID string, err error) {
	clientID = params.Get("client_id")
	hint := params.Get("id_token_hint")
	if hint == "" {
		return "", clientID, nil
	}
	var claims struct {
		Issuer   string   `json:"iss"`
		Subject  string   `json:"sub"`
		Audience audience `json:"aud"`
	}
	typ, err := s.keys.Verify(hint, &claims)
	if err != nil || typ != "JWT" || claims.Issuer != s.issuer || len(claims.Audience) == 0 {
		return "", "", errInvalidRequest("id_token_hint is not an ID token issued by this server")
	}
	if clientID != "" && !slices.Contains(claims.Audience, clientID) {
		return "", "", errInvalidRequest("client_id does not match the id_token_hint audience")
	}
	if clientID == "" {
		clientID = claims.Audience[0]
	}
	return claims.Subject, clientID, nil
}

func (s *Server) showLogoutConfirm(w http.ResponseWriter, r *http.Request, params url.Values) {
	var hidden []hiddenField
	for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state"} {
		if v := params.Get(k); v != "" {
			hidden = append(hidden, hiddenField{k, v})
		}
	}
	nonce := newNonce()
	s.render(w, http.StatusOK, "logout.html", nonce, logoutPage{
		page: s.newPage("Sign out", nonce), Action: s.pathPrefix + PathEndSession, CSRFToken: s.csrfToken(w, r), Hidden: hidden,
	})
}
