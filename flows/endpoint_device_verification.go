package flows

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// The device verification page (RFC 8628 §3.3): the user enters the code
// their device shows, signs in (or is already signed in: the SSO session
// is reused), sees which application asks for what, and approves or
// denies. Every step posts to PathDevice with a step field; every form
// carries the CSRF token, and after the code step an encrypted, signed
// deviceRequest naming the request, so no state is kept on the server
// until the decision.

// deviceRequestName binds the encrypted deviceRequest to its purpose: an
// auth_request value does not decode as one.
const deviceRequestName = "device_request"

// deviceRequest is the device authorization request a verification form
// is about.
type deviceRequest struct {
	// Digest is the digest of the device_code, the store key.
	Digest string `json:"d"`
	// UserCode is the normalised user code the user entered.
	UserCode string `json:"u"`
	// DecisionFor is the subject the confirmation page was shown to: a
	// decision posted under another session is refused.
	DecisionFor string `json:"f,omitempty"`
}

type deviceCodePage struct {
	page
	Action, CSRFToken, UserCode, Error string
	MaxLength                          int
}

type deviceLoginPage struct {
	page
	ClientName, Action, CSRFToken, DeviceRequest, Username, Error string
}

type deviceConfirmPage struct {
	page
	ClientName, UserName, APIName, UserCode, Action, CSRFToken, DeviceRequest string
	Scopes                                                                    []scopeView
}

type deviceDonePage struct {
	page
	Message, Again string
}

func (s *Server) serveDevice(w http.ResponseWriter, r *http.Request) {
	s.servePageForm(w, r, pageForm{
		get: s.deviceShowCode,
		steps: map[string]http.HandlerFunc{
			"code":    s.deviceEnterCode,
			"login":   s.deviceLogin,
			"confirm": s.deviceDecide,
		},
		again: "open the page again and enter the code",
		name:  "device verification form",
	})
}

// deviceShowCode shows the code form. RFC 8628 §3.3.1: with
// verification_uri_complete the code comes in the URL. It only pre-fills
// the form: the user still confirms it, and it is never looked up by a GET.
func (s *Server) deviceShowCode(w http.ResponseWriter, r *http.Request) {
	prefill := r.URL.Query().Get("user_code")
	if code, ok := normalizeUserCode(prefill); ok {
		prefill = formatUserCode(code)
	} else if len(prefill) > maxUserCodeInput {
		prefill = ""
	}
	s.showDeviceCode(w, r, prefill, "", http.StatusOK)
}

// deviceEnterCode looks up the user code the user typed.
func (s *Server) deviceEnterCode(w http.ResponseWriter, r *http.Request) {
	raw := r.PostForm.Get("user_code")
	if len(raw) > maxUserCodeInput {
		raw = "" // not a code; not worth showing back either
	}
	code, ok := normalizeUserCode(raw)
	if !ok {
		s.showDeviceCode(w, r, raw, "That is not a code from a device: codes are 8 letters such as BCDF-GHJK, without vowels.", http.StatusBadRequest)
		return
	}
	// RFC 8628 §5.1: "It is therefore recommended that the server
	// rate-limit user code attempts." Wrong codes are limited per IP and
	// in total (UserCodeThrottleConfig).
	ip := clientIP(r)
	admitted, wait, done := s.userCodes.Begin(ip)
	if !admitted {
		s.log.Warn("user code entry throttled", zap.String("ip", ip))
		s.showDeviceCode(w, r, raw, "Too many attempts. Try again in "+roundUp(wait).String()+".", http.StatusTooManyRequests)
		return
	}
	d, err := s.store.GetDeviceCodeByUserCode(r.Context(), code)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		done(true) // the store failed, not the user
		s.renderError(w, r, errServer(err))
		return
	}
	done(err == nil)
	if err != nil {
		s.log.Info("unknown user code entered", zap.String("ip", ip))
		s.showDeviceCode(w, r, raw, "That code is not valid or has expired. Check the code on your device and try again.", http.StatusBadRequest)
		return
	}
	if d.Status != store.DevicePending {
		s.showDeviceDone(w, r, http.StatusConflict, "Code already used", "This code has already been used. To connect the device again, start over on the device.")
		return
	}
	client, err := s.store.GetClient(r.Context(), d.ClientID)
	if err != nil {
		s.renderError(w, r, errInvalidRequest("the application of this request no longer exists"))
		return
	}
	s.continueDevice(w, r, client, d, &deviceRequest{Digest: d.Digest, UserCode: d.UserCode}, nil)
}

// continueDevice shows the sign-in form, or the confirmation page to the
// signed-in user. sess is the session just created on this request, if
// any.
func (s *Server) continueDevice(w http.ResponseWriter, r *http.Request, client *store.Client, d *store.DeviceCode, dr *deviceRequest, sess *store.Session) {
	if user := s.pageUser(r, sess); user != nil {
		s.showDeviceConfirm(w, r, client, user, d, dr)
		return
	}
	s.showDeviceLogin(w, r, client, dr, "", "", http.StatusOK)
}

// deviceForm decodes the request a login or confirmation form carries and
// loads it with its client. It answers the browser itself, and returns
// false, when the request cannot go on.
func (s *Server) deviceForm(w http.ResponseWriter, r *http.Request) (*store.Client, *store.DeviceCode, *deviceRequest, bool) {
	dr := new(deviceRequest)
	if err := s.requests.Decode(deviceRequestName, r.PostForm.Get(deviceRequestName), dr); err != nil || dr.Digest == "" {
		s.renderError(w, r, errInvalidRequest("the form expired or was tampered with; enter the code from your device again").WithCause(err))
		return nil, nil, nil, false
	}
	d, err := s.store.GetDeviceCode(r.Context(), dr.Digest)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && (d.UserCode != dr.UserCode || !store.Live(d.CodeExpiresAt, s.now()))):
		s.showDeviceDone(w, r, http.StatusBadRequest, "Code expired", "This code has expired. Start over on your device to get a new one.")
		return nil, nil, nil, false
	case err != nil:
		s.renderError(w, r, errServer(err))
		return nil, nil, nil, false
	case d.Status != store.DevicePending:
		s.showDeviceDone(w, r, http.StatusConflict, "Already answered", "This request has already been answered. To connect the device again, start over on the device.")
		return nil, nil, nil, false
	}
	client, err := s.store.GetClient(r.Context(), d.ClientID)
	if err != nil {
		s.renderError(w, r, errInvalidRequest("the application of this request no longer exists"))
		return nil, nil, nil, false
	}
	return client, d, dr, true
}

// deviceLogin signs the user in from the verification page: the same
// password check, throttle and SSO session as the login page.
func (s *Server) deviceLogin(w http.ResponseWriter, r *http.Request) {
	client, d, dr, ok := s.deviceForm(w, r)
	if !ok {
		return
	}
	s.signInStep(w, r,
		func(username, msg string, status int) { s.showDeviceLogin(w, r, client, dr, username, msg, status) },
		func(sess *store.Session) { s.continueDevice(w, r, client, d, dr, sess) },
		zap.String("client", client.ID), zap.String("flow", "device"))
}

// deviceDecide records the user's decision, once.
func (s *Server) deviceDecide(w http.ResponseWriter, r *http.Request) {
	client, _, dr, ok := s.deviceForm(w, r)
	if !ok {
		return
	}
	sess := s.currentSession(r)
	if sess == nil || dr.DecisionFor == "" || sess.Subject != dr.DecisionFor {
		// The confirmation was shown to someone else, or the session ended.
		s.renderError(w, r, &Error{Code: "access_denied", Status: http.StatusForbidden,
			Description: "your session changed or expired; enter the code from your device again"})
		return
	}
	approved, ok := s.formDecision(w, r)
	if !ok {
		return
	}
	_, err := s.store.DecideDeviceCode(r.Context(), dr.Digest, store.DeviceDecision{
		Approved: approved, Subject: sess.Subject, AuthTime: sess.AuthTime, SessionID: sidOf(sess.ID), At: s.now(),
	})
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		s.showDeviceDone(w, r, http.StatusConflict, "Already answered", "This request has already been answered. To connect the device again, start over on the device.")
		return
	case errors.Is(err, store.ErrNotFound):
		s.showDeviceDone(w, r, http.StatusBadRequest, "Code expired", "This code has expired. Start over on your device to get a new one.")
		return
	case err != nil:
		s.renderError(w, r, errServer(err))
		return
	}
	s.log.Info("device authorization decided", zap.String("sub", sess.Subject), zap.String("client", client.ID), zap.Bool("approved", approved))
	if approved {
		s.showDeviceDone(w, r, http.StatusOK, "Device connected", clientName(client)+" is connected to your account. You may return to your device: it continues on its own.")
		return
	}
	s.showDeviceDone(w, r, http.StatusOK, "Request denied", clientName(client)+" was not given access to your account. You can close this window.")
}

func (s *Server) showDeviceCode(w http.ResponseWriter, r *http.Request, userCode, msg string, status int) {
	nonce := newNonce()
	s.render(w, status, "device.html", nonce, deviceCodePage{
		page: s.newPage("Connect a device", nonce), Action: s.pathPrefix + PathDevice, CSRFToken: s.csrfToken(w, r),
		UserCode: userCode, Error: msg, MaxLength: maxUserCodeInput,
	})
}

func (s *Server) showDeviceLogin(w http.ResponseWriter, r *http.Request, client *store.Client, dr *deviceRequest, username, msg string, status int) {
	encoded, err := s.requests.Encode(deviceRequestName, dr)
	if err != nil {
		s.renderError(w, r, errServer(err))
		return
	}
	nonce := newNonce()
	s.render(w, status, "device_login.html", nonce, deviceLoginPage{
		page: s.newPage("Sign in", nonce), ClientName: clientName(client), Action: s.pathPrefix + PathDevice,
		CSRFToken: s.csrfToken(w, r), DeviceRequest: encoded, Username: username, Error: msg,
	})
}

// showDeviceConfirm renders the confirmation page, binding its form to
// user. RFC 8628 §5.4 (remote phishing): "it is RECOMMENDED to inform the
// user that they are authorizing a device during the user-interaction
// step ... and to confirm that the device is in their possession". The
// page names the application, shows the code to compare with the device's
// (§3.3.1) and says what approving grants.
func (s *Server) showDeviceConfirm(w http.ResponseWriter, r *http.Request, client *store.Client, user *store.User, d *store.DeviceCode, dr *deviceRequest) {
	dr.DecisionFor = user.ID
	encoded, err := s.requests.Encode(deviceRequestName, dr)
	if err != nil {
		s.renderError(w, r, errServer(err))
		return
	}
	apiName, views := s.scopeViews(r.Context(), d.Audience, d.Scopes)
	nonce := newNonce()
	s.render(w, http.StatusOK, "device_confirm.html", nonce, deviceConfirmPage{
		page: s.newPage("Connect "+clientName(client), nonce), ClientName: clientName(client), UserName: displayName(user),
		APIName: apiName, UserCode: formatUserCode(d.UserCode), Action: s.pathPrefix + PathDevice,
		CSRFToken: s.csrfToken(w, r), DeviceRequest: encoded, Scopes: views,
	})
}

func (s *Server) showDeviceDone(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	nonce := newNonce()
	again := ""
	if status != http.StatusOK {
		again = s.pathPrefix + PathDevice
	}
	s.render(w, status, "device_done.html", nonce, deviceDonePage{page: s.newPage(title, nonce), Message: msg, Again: again})
}
