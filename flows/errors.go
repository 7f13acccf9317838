package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an OAuth 2.0 error: the code and description a client sees, the
// HTTP status it is sent with, and the cause kept for the log.
type Error struct {
	// Code is the RFC error code (invalid_request, invalid_grant, …).
	Code string
	// Description is the human-readable error_description. It never
	// contains a secret or a token.
	Description string
	// Status is the HTTP status on direct (back-channel) responses.
	Status int
	// Cause is logged, never sent.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.Cause)
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Cause }

// WithCause returns a copy of e carrying cause for the log.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

func oauthErr(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Description: fmt.Sprintf(format, args...)}
}

// Constructors for the error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750
// §3.1 and OIDC Core §3.1.2.6.
func errInvalidRequest(format string, args ...any) *Error {
	return oauthErr("invalid_request", http.StatusBadRequest, format, args...)
}
func errInvalidClient(format string, args ...any) *Error {
	return oauthErr("invalid_client", http.StatusUnauthorized, format, args...)
}
func errInvalidGrant(format string, args ...any) *Error {
	return oauthErr("invalid_grant", http.StatusBadRequest, format, args...)
}
func errUnauthorizedClient(format string, args ...any) *Error {
	return oauthErr("unauthorized_client", http.StatusBadRequest, format, args...)
}
func errUnsupportedGrantType(format string, args ...any) *Error {
	return oauthErr("unsupported_grant_type", http.StatusBadRequest, format, args...)
}
func errInvalidScope(format string, args ...any) *Error {
	return oauthErr("invalid_scope", http.StatusBadRequest, format, args...)
}
func errAccessDenied(format string, args ...any) *Error {
	return oauthErr("access_denied", http.StatusForbidden, format, args...)
}
func errUnsupportedResponseType(format string, args ...any) *Error {
	return oauthErr("unsupported_response_type", http.StatusBadRequest, format, args...)
}
func errInvalidToken(format string, args ...any) *Error {
	return oauthErr("invalid_token", http.StatusUnauthorized, format, args...)
}
func errInsufficientScope(format string, args ...any) *Error {
	return oauthErr("insufficient_scope", http.StatusForbidden, format, args...)
}
func errLoginRequired(format string, args ...any) *Error {
	return oauthErr("login_required", http.StatusBadRequest, format, args...)
}
func errConsentRequired(format string, args ...any) *Error {
	return oauthErr("consent_required", http.StatusBadRequest, format, args...)
}
func errServer(cause error) *Error {
	return &Error{Code: "server_error", Status: http.StatusInternalServerError,
		Description: "the server could not complete the request; it has been logged", Cause: cause}
}

// asOAuth turns any error into an *Error: unknown errors are server errors.
func asOAuth(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return errServer(err)
}

// retryAfterBusy is the Retry-After of a 503: a bounded cache that is
// full of live entries (client assertions, DPoP proofs) has room again
// as they expire.
const retryAfterBusy = "5"

// writeJSONError renders err as the JSON error body of RFC 6749 §5.2.
func (s *Server) writeJSONError(w http.ResponseWriter, r *http.Request, err error) {
	oe := asOAuth(err)
	s.logError(r, oe)
	if oe.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterBusy)
	}
	if oe.Status == http.StatusUnauthorized && oe.Code == "invalid_client" {
		if _, _, ok := r.BasicAuth(); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+s.issuer+`"`)
		}
	}
	writeJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(body)
}
