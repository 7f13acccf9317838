package flows

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// The CIBA approval page: the user opens /ciba on a device of their own,
// signs in (or is signed in already: the SSO session is reused), sees each
// request waiting for them with the client's name and logo, the scopes in
// plain words and the binding message to compare with the one the client
// shows, and approves or denies. Every form carries the CSRF token and an
// encrypted, signed reference to the request and the user it was shown to,
// so a decision posted under another session is refused.

// cibaRefName binds the encrypted request reference to its purpose.
const cibaRefName = "ciba_request"

// cibaRef is the request a decision form is about.
type cibaRef struct {
	ID  string `json:"i"`
	For string `json:"f"`
}

type cibaLoginPage struct {
	page
	Action, CSRFToken, Username, Error string
}

type cibaListPage struct {
	page
	UserName, Action, CSRFToken string
	Requests                    []cibaCard
}

// cibaCard is one pending request on the page.
type cibaCard struct {
	ClientName, LogoURI, APIName, BindingMessage, Ref string
	Scopes                                            []scopeView
}

type cibaDonePage struct {
	page
	Message, Back string
}

func (s *Server) serveCIBAPage(w http.ResponseWriter, r *http.Request) {
	s.servePageForm(w, r, pageForm{
		get: func(w http.ResponseWriter, r *http.Request) { s.continueCIBA(w, r, nil) },
		steps: map[string]http.HandlerFunc{
			"login":  s.cibaLogin,
			"":       s.cibaLogin,
			"decide": s.cibaDecide,
		},
		again: "open the page again",
		name:  "approval form",
	})
}

// continueCIBA shows the signed-in user's pending requests, or the
// sign-in form. sess is the session just created on this request, if any.
func (s *Server) continueCIBA(w http.ResponseWriter, r *http.Request, sess *store.Session) {
	if user := s.pageUser(r, sess); user != nil {
		s.showCIBAList(w, r, user)
		return
	}
	s.showCIBALogin(w, r, "", "", http.StatusOK)
}

// cibaLogin signs the user in from the approval page.
func (s *Server) cibaLogin(w http.ResponseWriter, r *http.Request) {
	s.signInStep(w, r,
		func(username, msg string, status int) { s.showCIBALogin(w, r, username, msg, status) },
		func(sess *store.Session) { s.continueCIBA(w, r, sess) },
		zap.String("flow", "ciba"))
}

// cibaDecide records the signed-in user's decision on one request.
func (s *Server) cibaDecide(w http.ResponseWriter, r *http.Request) {
	var ref cibaRef
	if err := s.requests.Decode(cibaRefName, r.PostForm.Get(cibaRefName), &ref); err != nil || ref.ID == "" {
		s.renderError(w, r, errInvalidRequest("the form expired or was tampered with; open the page again").WithCause(err))
		return
	}
	sess := s.currentSession(r)
	// The decision is bound to the user the request names and to the
	// session the form was shown to: alice cannot answer bob's request.
	if sess == nil || sess.Subject != ref.For {
		s.renderError(w, r, &Error{Code: "access_denied", Status: http.StatusForbidden,
			Description: "your session changed or expired; open the page again"})
		return
	}
	approved, ok := s.formDecision(w, r)
	if !ok {
		return
	}
	decided, err := s.decideCIBA(r.Context(), ref.ID, store.CIBADecision{
		Approved: approved, Subject: sess.Subject, AuthTime: sess.AuthTime, SessionID: sidOf(sess.ID), Via: cibaViaPage, At: s.now(),
	})
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		s.showCIBADone(w, r, http.StatusConflict, "Already answered", "This request has already been answered.")
		return
	case errors.Is(err, store.ErrNotFound):
		s.showCIBADone(w, r, http.StatusBadRequest, "Request expired", "This request has expired. The application has to ask again.")
		return
	case err != nil:
		s.renderError(w, r, errServer(err))
		return
	}
	name := decided.ClientID
	if c, err := s.store.GetClient(r.Context(), decided.ClientID); err == nil {
		name = clientName(c)
	}
	if approved {
		s.showCIBADone(w, r, http.StatusOK, "Approved", "You signed in to "+name+". You can close this window.")
		return
	}
	s.showCIBADone(w, r, http.StatusOK, "Denied", name+" was not given access to your account. You can close this window.")
}

func (s *Server) showCIBALogin(w http.ResponseWriter, r *http.Request, username, msg string, status int) {
	nonce := newNonce()
	s.render(w, status, "ciba_login.html", nonce, cibaLoginPage{
		page: s.newPage("Sign in", nonce), Action: s.pathPrefix + PathCIBA, CSRFToken: s.csrfToken(w, r),
		Username: username, Error: msg,
	})
}

func (s *Server) showCIBAList(w http.ResponseWriter, r *http.Request, user *store.User) {
	ctx := r.Context()
	list, err := s.store.ListCIBARequests(ctx, user.ID)
	if err != nil {
		s.renderError(w, r, errServer(err))
		return
	}
	cards := make([]cibaCard, 0, len(list))
	for _, req := range list {
		ref, err := s.requests.Encode(cibaRefName, cibaRef{ID: req.ID, For: user.ID})
		if err != nil {
			s.renderError(w, r, errServer(err))
			return
		}
		card := cibaCard{ClientName: req.ClientID, BindingMessage: req.BindingMessage, Ref: ref}
		if c, err := s.store.GetClient(ctx, req.ClientID); err == nil {
			card.ClientName, card.LogoURI = clientName(c), c.LogoURI
		}
		card.APIName, card.Scopes = s.scopeViews(ctx, req.Audience, req.Scopes)
		cards = append(cards, card)
	}
	nonce := newNonce()
	s.render(w, http.StatusOK, "ciba.html", nonce, cibaListPage{
		page: s.newPage("Sign-in requests", nonce), UserName: displayName(user), Action: s.pathPrefix + PathCIBA,
		CSRFToken: s.csrfToken(w, r), Requests: cards,
	})
}

func (s *Server) showCIBADone(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	nonce := newNonce()
	s.render(w, status, "ciba_done.html", nonce, cibaDonePage{page: s.newPage(title, nonce), Message: msg, Back: s.pathPrefix + PathCIBA})
}
