package flows

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// The pages a user answers on a device of their own (device verification,
// CIBA approval) work alike: GET shows the page, every POST carries the CSRF
// token and a step field naming the form it came from, and the sign-in step
// is the login page's password check, throttle and SSO session.

// pageForm is one such page: what GET shows and the handler of each step.
type pageForm struct {
	get   http.HandlerFunc
	steps map[string]http.HandlerFunc
	// again ends the CSRF error: what the user does next.
	again string
	// name is the form's name in the unknown-step error.
	name string
}

// servePageForm answers GET, or reads and checks a POSTed form and runs
// its step.
func (s *Server) servePageForm(w http.ResponseWriter, r *http.Request, f pageForm) {
	switch r.Method {
	case http.MethodGet:
		if _, err := queryParams(r); err != nil {
			s.renderError(w, r, err)
			return
		}
		f.get(w, r)
	case http.MethodPost:
		if _, err := readForm(w, r); err != nil {
			s.renderError(w, r, err)
			return
		}
		if !s.checkCSRF(r) {
			s.renderError(w, r, &Error{Code: "invalid_request", Status: http.StatusForbidden,
				Description: "the form expired or did not come from this site; " + f.again})
			return
		}
		step, ok := f.steps[r.PostForm.Get("step")]
		if !ok {
			s.renderError(w, r, errInvalidRequest("unknown step of the %s", f.name))
			return
		}
		step(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, r, &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "use GET or POST"})
	}
}

// signInStep signs the user in from a page's sign-in form. A failed
// attempt goes back to retry with the username, the message and the
// status to show; the new session goes on to next. fields are logged after
// the subject.
func (s *Server) signInStep(w http.ResponseWriter, r *http.Request,
	retry func(username, msg string, status int), next func(*store.Session), fields ...zap.Field) {
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	user, msg, status := s.signInUser(r, username, password)
	if user == nil {
		retry(username, msg, status)
		return
	}
	sess, err := s.startSession(w, r, user)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.log.Info("signed in", append([]zap.Field{zap.String("sub", user.ID)}, fields...)...)
	next(sess)
}

// pageUser is the enabled user signed in with sess, or with the request's
// session when sess is nil (the one just created is not in the request's
// cookies yet); nil when there is none.
func (s *Server) pageUser(r *http.Request, sess *store.Session) *store.User {
	if sess == nil {
		sess = s.currentSession(r)
	}
	if sess == nil {
		return nil
	}
	user, err := s.store.GetUser(r.Context(), sess.Subject)
	if err != nil || user.Disabled {
		return nil
	}
	return user
}

// formDecision reads the allow or deny of a decision form. It answers the
// browser itself, and returns false, when the field is neither.
func (s *Server) formDecision(w http.ResponseWriter, r *http.Request) (approved, ok bool) {
	switch r.PostForm.Get("decision") {
	case "allow":
		return true, true
	case "deny":
		return false, true
	}
	s.renderError(w, r, errInvalidRequest("decision must be allow or deny"))
	return false, false
}

// displayName is what a page calls the user: their name, else their
// username.
func displayName(user *store.User) string {
	if user.Name != "" {
		return user.Name
	}
	return user.Username
}
