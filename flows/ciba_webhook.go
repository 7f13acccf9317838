package flows

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis-gw/portcullis/store"
)

// The authenticator webhook: a deployment with an app of its own (a
// phone app that shows a prompt) configures a webhook URL; every new CIBA
// request is POSTed to it as a JWT signed with the server's key (published
// in the JWKS, typ ciba-webhook+jwt), with per-request approve and deny
// links the app POSTs to once the user has answered. The links are
// encrypted and signed with the server's key, name the request and the
// user it is for, expire with the request, and are single-use because a
// request is decided once.

// CIBAWebhookJWTType is the typ header of webhook JWTs: they can be
// mistaken neither for ID tokens nor for access tokens.
const CIBAWebhookJWTType = "ciba-webhook+jwt"

// cibaLinkName binds a sealed decision link to its purpose.
const cibaLinkName = "ciba_link"

// cibaLink is what a decision link carries.
type cibaLink struct {
	ID      string `json:"i"`
	Subject string `json:"s"`
	Approve bool   `json:"a"`
	Expiry  int64  `json:"e"`
}

func (s *Server) decisionLink(r *store.CIBARequest, approve bool) (string, error) {
	tok, err := s.ciba.sealer.Encode(cibaLinkName, cibaLink{ID: r.ID, Subject: r.Subject, Approve: approve, Expiry: r.CodeExpiresAt.Unix()})
	if err != nil {
		return "", err
	}
	return s.url(PathCIBADecision) + "?" + url.Values{"token": {tok}}.Encode(), nil
}

// webhookCall is the POST of a new request to the webhook.
func (s *Server) webhookCall(client *store.Client, r *store.CIBARequest) (*outbound, bool, error) {
	approve, err := s.decisionLink(r, true)
	if err != nil {
		return nil, false, err
	}
	deny, err := s.decisionLink(r, false)
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	tok, err := s.keys.Sign(map[string]any{
		"iss": s.issuer, "aud": s.ciba.cfg.WebhookURL, "iat": now.Unix(), "exp": r.CodeExpiresAt.Unix(),
		"jti": randomToken()[:22], "request_id": r.ID, "sub": r.Subject, "client_id": r.ClientID,
		"client_name": clientName(client), "scope": strings.Join(r.Scopes, " "), "binding_message": r.BindingMessage,
		"approve_url": approve, "deny_url": deny,
	}, CIBAWebhookJWTType)
	if err != nil {
		return nil, false, err
	}
	return &outbound{url: s.ciba.cfg.WebhookURL, contentType: "application/jwt", body: []byte(tok)}, false, nil
}

// serveCIBADecision takes a POST to a decision link.
func (s *Server) serveCIBADecision(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.writeJSONError(w, r, &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "POST to the link to decide"})
		return
	}
	var link cibaLink
	q, err := queryParams(r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	raw := q.Get("token")
	if err := s.ciba.sealer.Decode(cibaLinkName, raw, &link); err != nil || link.ID == "" {
		s.writeJSONError(w, r, errInvalidRequest("the decision link is invalid").WithCause(err))
		return
	}
	now := s.now()
	if now.Unix() >= link.Expiry {
		s.writeJSONError(w, r, oauthErr("expired_token", http.StatusNotFound, "the request has expired"))
		return
	}
	decided, err := s.decideCIBA(r.Context(), link.ID, store.CIBADecision{Approved: link.Approve, Subject: link.Subject, AuthTime: now, Via: cibaViaWebhook, At: now})
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.writeJSONError(w, r, oauthErr("expired_token", http.StatusNotFound, "the request is unknown or has expired"))
		return
	case errors.Is(err, store.ErrAlreadyUsed):
		s.writeJSONError(w, r, oauthErr("invalid_request", http.StatusConflict, "the request was already decided"))
		return
	case err != nil:
		s.writeJSONError(w, r, errServer(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"request_id": decided.ID, "status": decided.Status})
}
