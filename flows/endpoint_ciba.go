package flows

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// The backchannel authentication endpoint (CIBA Core §7): an
// authenticated client names a user and asks for their sign-in; it gets an
// auth_req_id back at once, and the user decides out of band.

// Limits on the request's parameters.
const (
	// maxBindingMessageRunes bounds binding_message, which the user reads
	// on a phone screen.
	maxBindingMessageRunes = 128
	// maxNotificationTokenLen is CIBA Core §7.1's bound on
	// client_notification_token.
	maxNotificationTokenLen = 1024
	// maxHintLen bounds login_hint and user_code.
	maxHintLen = 256
	// maxACRValuesLen bounds acr_values, which is only recorded.
	maxACRValuesLen = 512
)

// bearerSyntax is RFC 6750 §2.1's b64token.
var bearerSyntax = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// cibaParams are the parameters of a request whose form outside a
// request object is limited to client authentication (CIBA Core §7.1.1).
var cibaParams = []string{"scope", "client_notification_token", "acr_values", "login_hint_token", "id_token_hint",
	"login_hint", "binding_message", "user_code", "requested_expiry", "audience", "resource"}

// cibaAuthResponse is CIBA Core §7.3.
type cibaAuthResponse struct {
	AuthReqID string `json:"auth_req_id"`
	ExpiresIn int64  `json:"expires_in"`
	Interval  int64  `json:"interval,omitempty"`
}

// CIBA Core §13 error codes not shared with RFC 6749.
func errUnknownUserID() *Error {
	return oauthErr("unknown_user_id", http.StatusBadRequest, "the OpenID Provider cannot identify the user the hint names")
}

func errMissingUserCode() *Error {
	return oauthErr("missing_user_code", http.StatusBadRequest, "this client must send the user's user_code")
}

func errInvalidUserCode() *Error {
	return oauthErr("invalid_user_code", http.StatusBadRequest, "the user_code is not the user's code")
}

func errInvalidBindingMessage(format string, args ...any) *Error {
	return oauthErr("invalid_binding_message", http.StatusBadRequest, format, args...)
}

func (s *Server) serveBackchannelAuthentication(w http.ResponseWriter, r *http.Request) {
	resp, err := s.backchannelAuthentication(w, r)
	if err != nil {
		// CIBA Core §13: errors are as in RFC 6749 §5.2, JSON.
		s.writeJSONError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) backchannelAuthentication(w http.ResponseWriter, r *http.Request) (*cibaAuthResponse, error) {
	if err := parsePostForm(w, r); err != nil {
		return nil, err
	}
	// CIBA Core §7.1: "The Client MUST authenticate to the Backchannel
	// Authentication Endpoint using the authentication method registered
	// for its client_id", the methods of the token endpoint.
	client, err := s.authenticateClient(r)
	if err != nil {
		return nil, err
	}
	if client.Public() {
		return nil, errUnauthorizedClient("client %s is public: CIBA needs a client that authenticates", client.ID)
	}
	if !client.HasGrantType(GrantCIBA) {
		return nil, errUnauthorizedClient("client %s is not allowed the CIBA grant", client.ID)
	}
	if ok, wait := s.ciba.limits.allowClient(client.ID); !ok {
		s.log.Warn("backchannel authentication throttled", zap.String("client", client.ID))
		return nil, s.tooManyCIBA(w, wait, "client %s sends too many backchannel authentication requests", client.ID)
	}
	ctx := r.Context()
	params := r.PostForm
	if raw := params.Get("request"); raw != "" {
		// §7.1.1: "Authentication request parameters MUST NOT be present
		// outside of the JWT, in particular they MUST NOT appear as HTTP
		// request parameters."
		for _, k := range cibaParams {
			if params.Has(k) {
				return nil, errInvalidRequest("parameter %s must be inside the signed request object, not beside it", k)
			}
		}
		if params, err = s.requestObjectParams(ctx, client, raw); err != nil {
			return nil, err
		}
	} else if client.BackchannelAuthenticationRequestSigningAlg != "" {
		// A client registered with backchannel_authentication_request_
		// signing_alg must sign its requests.
		return nil, errInvalidRequest("client %s must send a signed request object (%s)", client.ID, client.BackchannelAuthenticationRequestSigningAlg)
	}

	scopes, err := parseScope(params.Get("scope"))
	if err != nil {
		return nil, err
	}
	// §7.1: "CIBA authentication requests MUST therefore contain the
	// openid scope value."
	if !hasScope(scopes, "openid") {
		return nil, errInvalidRequest("scope must contain openid")
	}
	audience := params.Get("audience")
	if audience == "" {
		audience = params.Get("resource")
	}
	api, err := s.resolveAudience(ctx, audience, scopes)
	if err != nil {
		return nil, err
	}
	if err := checkUserScopes(client, api, scopes); err != nil {
		return nil, err
	}
	mode := client.BackchannelTokenDeliveryMode
	if mode == "" {
		mode = store.CIBAModePoll
	}
	notifyToken := params.Get("client_notification_token")
	if mode != store.CIBAModePoll {
		// §7.1: "client_notification_token REQUIRED if the Client is
		// registered to use Ping or Push modes. [...] The length of the
		// token MUST NOT exceed 1024 characters and it MUST conform to the
		// syntax for Bearer credentials as defined in Section 2.1 of
		// [RFC6750]."
		if notifyToken == "" {
			return nil, errInvalidRequest("client_notification_token is required in %s mode", mode)
		}
		if len(notifyToken) > maxNotificationTokenLen || !bearerSyntax.MatchString(notifyToken) {
			return nil, errInvalidRequest("client_notification_token must be a bearer token (RFC 6750 §2.1) of at most %d characters", maxNotificationTokenLen)
		}
		if client.BackchannelClientNotificationEndpoint == "" {
			return nil, errUnauthorizedClient("client %s is registered for %s mode without a notification endpoint", client.ID, mode)
		}
	} else {
		notifyToken = ""
	}
	binding := params.Get("binding_message")
	if err := checkBindingMessage(binding); err != nil {
		return nil, err
	}
	ttl := s.ciba.cfg.RequestTTL
	if v := params.Get("requested_expiry"); v != "" {
		// §7.1: "requested_expiry OPTIONAL. A positive integer allowing the
		// client to request the expires_in value for the auth_req_id the
		// server will return."
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, errInvalidRequest("requested_expiry must be a positive integer of seconds")
		}
		ttl = min(time.Duration(min(n, int64(MaxCIBARequestTTL/time.Second)))*time.Second, MaxCIBARequestTTL)
	}
	acr := params.Get("acr_values")
	if len(acr) > maxACRValuesLen {
		return nil, errInvalidRequest("acr_values is longer than %d characters", maxACRValuesLen)
	}

	user, err := s.cibaUser(ctx, client, params)
	if err != nil {
		return nil, err
	}
	if ok, wait := s.ciba.limits.allowUser(user.ID); !ok {
		s.log.Warn("backchannel authentication throttled for user", zap.String("client", client.ID), zap.String("sub", user.ID))
		return nil, s.tooManyCIBA(w, wait, "too many backchannel authentication requests for this user; retry later")
	}
	if client.BackchannelUserCodeParameter {
		if err := s.checkCIBAUserCode(r, user, params.Get("user_code")); err != nil {
			return nil, err
		}
	}
	return s.storeCIBARequest(ctx, w, client, user, &cibaRequestParams{
		scopes: scopes, audience: apiID(api), mode: mode, notifyToken: notifyToken, binding: binding, acr: acr, ttl: ttl,
	})
}

// cibaRequestParams are a validated request's parameters.
type cibaRequestParams struct {
	scopes                                    []string
	audience, mode, notifyToken, binding, acr string
	ttl                                       time.Duration
}

// storeCIBARequest stores the request with the notifications it queues
// and answers with its auth_req_id.
func (s *Server) storeCIBARequest(ctx context.Context, w http.ResponseWriter, client *store.Client, user *store.User, p *cibaRequestParams) (*cibaAuthResponse, error) {
	now := s.now()
	// §7.3: auth_req_id "MUST contain sufficient entropy (a minimum of 128
	// bits while 160 bits is recommended)": 256 bits, stored as a digest.
	authReqID := randomToken()
	interval := s.ciba.interval()
	rec := &store.CIBARequest{
		Digest: digest(authReqID), ID: randomToken()[:22], ClientID: client.ID, Scopes: p.scopes, Audience: p.audience,
		Subject: user.ID, BindingMessage: p.binding, ACRValues: p.acr, DeliveryMode: p.mode, NotificationToken: p.notifyToken,
		Interval: int64(interval / time.Second), Status: store.CIBAPending, GrantID: randomToken()[:22],
		CreatedAt: now, CodeExpiresAt: now.Add(p.ttl), ExpiresAt: now.Add(p.ttl + cibaRecordGrace),
	}
	var notes []*store.CIBANotification
	if p.mode != store.CIBAModePoll {
		sealed, err := s.ciba.sealer.Encode(cibaAuthReqIDName, authReqID)
		if err != nil {
			return nil, errServer(err)
		}
		rec.SealedAuthReqID = sealed
		rec.ExpiryNotificationID = rec.ID + ".expiry"
		notes = append(notes, &store.CIBANotification{
			ID: rec.ExpiryNotificationID, Kind: store.CIBANotifyExpiry, RequestDigest: rec.Digest, ClientID: client.ID,
			NextAttemptAt: rec.CodeExpiresAt, CreatedAt: now, ExpiresAt: rec.ExpiresAt,
		})
	}
	if s.ciba.cfg.WebhookURL != "" {
		notes = append(notes, &store.CIBANotification{
			ID: rec.ID + ".webhook", Kind: store.CIBANotifyWebhook, RequestDigest: rec.Digest, ClientID: client.ID,
			NextAttemptAt: now, CreatedAt: now, ExpiresAt: rec.CodeExpiresAt,
		})
	}
	switch err := s.store.PutCIBARequest(ctx, rec, s.ciba.cfg.MaxPendingPerUser, notes...); {
	case errors.Is(err, store.ErrLimitReached):
		s.log.Warn("backchannel authentication refused: too many pending requests", zap.String("client", client.ID), zap.String("sub", user.ID))
		return nil, s.tooManyCIBA(w, s.ciba.interval(), "the user has %d requests waiting for a decision; retry when they have answered", s.ciba.cfg.MaxPendingPerUser)
	case err != nil:
		return nil, errServer(err)
	}
	if s.ciba.cfg.WebhookURL != "" {
		s.ciba.notifier.wakeUp(rec.ID + ".webhook")
	}
	s.log.Info("backchannel authentication requested", zap.String("request", rec.ID), zap.String("client", client.ID),
		zap.String("sub", user.ID), zap.String("mode", p.mode))
	resp := &cibaAuthResponse{AuthReqID: authReqID, ExpiresIn: int64(p.ttl / time.Second)}
	// §7.3: interval is "the minimum amount of time in seconds that the
	// Client MUST wait between polling requests to the token endpoint":
	// a push client never polls.
	if p.mode != store.CIBAModePush {
		resp.Interval = rec.Interval
	}
	return resp, nil
}

// cibaAuthReqIDName binds the sealed auth_req_id to its purpose.
const cibaAuthReqIDName = "ciba_auth_req_id"

// tooManyCIBA is the answer to a request over a rate limit or the pending
// cap. CIBA Core defines no code for it; the OP is refusing the request,
// which §13 calls access_denied, sent with 429 and Retry-After.
func (s *Server) tooManyCIBA(w http.ResponseWriter, wait time.Duration, format string, args ...any) *Error {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(roundUp(wait)/time.Second), 10))
	return oauthErr("access_denied", http.StatusTooManyRequests, format, args...)
}

// checkBindingMessage applies §7.1: binding_message "SHOULD be relatively
// short and use a limited set of plain text characters". It is shown as
// sent (escaped), so it must be valid text without control characters.
func checkBindingMessage(m string) error {
	if !utf8.ValidString(m) {
		return errInvalidBindingMessage("binding_message is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(m); n > maxBindingMessageRunes {
		return errInvalidBindingMessage("binding_message has %d characters; at most %d are shown", n, maxBindingMessageRunes)
	}
	for _, c := range m {
		if unicode.IsControl(c) || c == '\u2028' || c == '\u2029' || unicode.Is(unicode.Bidi_Control, c) {
			return errInvalidBindingMessage("binding_message must be plain text without control characters")
		}
	}
	return nil
}

// cibaUser finds the user the request's hint names. §7.1: "it is
// REQUIRED that the Client provides one (and only one) of the hints
// specified above in the authentication request, that is
// "login_hint_token", "id_token_hint" or "login_hint"."
func (s *Server) cibaUser(ctx context.Context, client *store.Client, params map[string][]string) (*store.User, error) {
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	hints := 0
	for _, k := range []string{"login_hint", "id_token_hint", "login_hint_token"} {
		if get(k) != "" {
			hints++
		}
	}
	if hints != 1 {
		return nil, errInvalidRequest("send exactly one of login_hint, id_token_hint and login_hint_token (got %d)", hints)
	}
	var username string
	var err error
	switch {
	case get("login_hint") != "":
		username = get("login_hint")
		if len(username) > maxHintLen {
			return nil, errUnknownUserID()
		}
	case get("id_token_hint") != "":
		username, err = s.idTokenHintSubject(client, get("id_token_hint"))
	default:
		username, err = s.loginHintTokenSubject(ctx, client, get("login_hint_token"))
	}
	if err != nil {
		return nil, err
	}
	// §13: "unknown_user_id: The OpenID Provider is not able to identify
	// which end-user the Client wishes to be authenticated by means of the
	// hint provided in the request".
	u, err := s.store.GetUser(ctx, username)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return nil, errUnknownUserID()
	}
	if err != nil {
		return nil, errServer(err)
	}
	return u, nil
}

// checkCIBAUserCode checks the user_code of a client registered with
// backchannel_user_code_parameter against the user's code (argon2id, so
// bounded like password checks). §13: "missing_user_code: User code is
// required but was missing from the request"; "invalid_user_code: User
// code was invalid."
func (s *Server) checkCIBAUserCode(r *http.Request, user *store.User, code string) error {
	if code == "" {
		return errMissingUserCode()
	}
	if len(code) > maxHintLen {
		return errInvalidUserCode()
	}
	select {
	case s.hashSlots <- struct{}{}:
		defer func() { <-s.hashSlots }()
	case <-r.Context().Done():
		return errServer(r.Context().Err())
	}
	hash := user.BackchannelUserCodeHash
	if hash == "" {
		hash = dummyHash // as long as a real check
	}
	ok, err := VerifyPassword(hash, code)
	if user.BackchannelUserCodeHash == "" || err != nil || !ok {
		return errInvalidUserCode()
	}
	return nil
}
