package flows

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/session"
	"github.com/portcullis-gw/portcullis/store"
)

// OpenID Connect Client-Initiated Backchannel Authentication (CIBA Core
// 1.0): a client that knows who the user is (a call-centre agent's tool, a
// kiosk, a back-end) asks the backchannel authentication endpoint to sign
// them in; the user approves on a device of their own (the approval page,
// or an authenticator app called through the webhook); the client gets the
// tokens by polling the token endpoint (poll), by redeeming them when it
// is pinged (ping), or has them pushed to its notification endpoint
// (push).
//
// The files: endpoint_ciba.go (the endpoint), ciba_request_object.go
// (signed request objects and hints), grant_ciba.go (the token grant),
// ciba_notify.go (ping and push delivery), ciba_webhook.go (the
// authenticator app), endpoint_ciba_page.go (the approval page),
// ciba_throttle.go (rate limits).

// CIBA paths below the issuer.
const (
	// PathBackchannelAuthentication is the backchannel authentication
	// endpoint (CIBA Core §7).
	PathBackchannelAuthentication = "/bc-authorize"
	// PathCIBA is the approval page.
	PathCIBA = "/ciba"
	// PathCIBADecision takes the per-request signed approve and deny links
	// handed to the authenticator app.
	PathCIBADecision = "/ciba/decision"
)

// Limits of the CIBA flow.
const (
	// MaxCIBARequestTTL bounds the lifetime of an auth_req_id, whatever
	// requested_expiry asks for.
	MaxCIBARequestTTL = 30 * time.Minute
	// cibaRecordGrace is how long a request is kept after its auth_req_id
	// expired: a late poll is told expired_token, a replayed redemption is
	// recognised, and notifications still being retried find it.
	cibaRecordGrace = 15 * time.Minute
	// cibaNotifyWindow bounds how long one notification is retried.
	cibaNotifyWindow = 10 * time.Minute
	// cibaSealTTL bounds what the sealed auth_req_id, pushed payloads and
	// decision links can be decoded for: longer than any of them lives.
	cibaSealTTL = 24 * time.Hour
)

// CIBAConfig configures the CIBA flow. Zero values take the defaults.
type CIBAConfig struct {
	// RequestTTL is the lifetime of an auth_req_id when the client asks
	// for none (requested_expiry); at most MaxCIBARequestTTL.
	// Default: 5 minutes.
	RequestTTL time.Duration
	// PollInterval is the minimum time between polls, in whole seconds
	// (rounded up). Default: 5s.
	PollInterval time.Duration
	// MaxPendingPerUser bounds the requests waiting for one user's
	// decision. Default: 5.
	MaxPendingPerUser int
	// ClientRate bounds the requests one client makes. Default: 100 per
	// second.
	ClientRate RateLimit
	// UserRate bounds the requests made for one user, by every client
	// together: no push-bombing. Default: 10 per minute.
	UserRate RateLimit
	// WebhookURL, when set, receives a signed JWT for every new request,
	// for an authenticator app of the deployment's own.
	WebhookURL string
	// InsecureNotificationEndpoints allows plain-http notification
	// endpoints and webhook on loopback hosts, for development only.
	InsecureNotificationEndpoints bool
	// HTTPClient sends notifications. Default: a client with a 5 s timeout
	// that follows no redirects.
	HTTPClient *http.Client
}

// RateLimit is a token bucket: Burst requests at once, refilled at Burst
// per Interval.
type RateLimit struct {
	Burst    int
	Interval time.Duration
}

func (c *CIBAConfig) setDefaults() {
	if c.RequestTTL <= 0 {
		c.RequestTTL = 5 * time.Minute
	}
	c.RequestTTL = min(c.RequestTTL, MaxCIBARequestTTL)
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.MaxPendingPerUser <= 0 {
		c.MaxPendingPerUser = 5
	}
	if c.ClientRate.Burst <= 0 || c.ClientRate.Interval <= 0 {
		c.ClientRate = RateLimit{Burst: 100, Interval: time.Second}
	}
	if c.UserRate.Burst <= 0 || c.UserRate.Interval <= 0 {
		c.UserRate = RateLimit{Burst: 10, Interval: time.Minute}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout: 5 * time.Second,
			// A notification goes to the registered endpoint only: a
			// redirect could send it (and its bearer token) anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
}

// Validate reports a CIBA configuration that cannot work.
func (c CIBAConfig) Validate() error {
	if c.RequestTTL > MaxCIBARequestTTL {
		return fmt.Errorf("ciba request_ttl %s is longer than the maximum %s", c.RequestTTL, MaxCIBARequestTTL)
	}
	if c.RequestTTL > 0 && c.PollInterval >= c.RequestTTL {
		return fmt.Errorf("ciba poll_interval %s must be shorter than request_ttl %s", c.PollInterval, c.RequestTTL)
	}
	if c.WebhookURL != "" {
		if err := CheckNotificationURL(c.WebhookURL, c.InsecureNotificationEndpoints); err != nil {
			return fmt.Errorf("ciba webhook: %w", err)
		}
	}
	return nil
}

// CheckNotificationURL checks a CIBA client notification endpoint or
// webhook: an absolute https URL without fragment or user info; plain http
// only on a loopback host, and only when insecure is set.
func CheckNotificationURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q must be an absolute https URL", raw)
	}
	if u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must not contain a fragment or user info", raw)
	}
	if u.Scheme == "http" {
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q uses plain http on a non-loopback host; use https", raw)
		}
		if !insecure {
			return fmt.Errorf("%q uses plain http: allowed on loopback only with the insecure_notification_endpoints development switch", raw)
		}
	}
	return nil
}

// cibaState is what the CIBA flow keeps in memory.
type cibaState struct {
	cfg CIBAConfig
	// polls remembers when each pending request was last polled.
	polls *devicePolls
	// limits are the per-client and per-user rate limits.
	limits *cibaLimits
	// sealer encrypts the auth_req_ids ping and push need, pushed
	// payloads waiting for a retry, and the webhook's decision links.
	sealer   *session.Codec
	notifier *cibaNotifier
}

func newCIBAState(s *Server, cfg CIBAConfig, secrets [][]byte) (*cibaState, error) {
	cfg.setDefaults()
	sealer, err := session.NewCodec("ciba", cibaSealTTL, secrets...)
	if err != nil {
		return nil, err
	}
	st := &cibaState{cfg: cfg, polls: newDevicePolls(maxDevicePolls), sealer: sealer,
		limits: newCIBALimits(cfg.ClientRate, cfg.UserRate, s.now)}
	st.notifier = newCIBANotifier(s, cfg.HTTPClient)
	return st, nil
}

// cibaInterval is the configured polling interval in whole seconds,
// rounded up, at least one.
func (c *cibaState) interval() time.Duration {
	return max((c.cfg.PollInterval + time.Second - 1).Truncate(time.Second), time.Second)
}

// Ways a CIBA request is decided, recorded with the decision.
const (
	cibaViaPage    = "page"
	cibaViaAdmin   = "admin"
	cibaViaWebhook = "webhook"
)

// decideCIBA records the decision of subject on the request id, queues the
// client's notification (ping and push) in the same transaction, and wakes
// the notifier so that it goes out now rather than at the next sweep. The
// store's errors (ErrNotFound, ErrAlreadyUsed) are returned as they are.
func (s *Server) decideCIBA(ctx context.Context, id string, dec store.CIBADecision) (*store.CIBARequest, error) {
	r, err := s.store.GetCIBARequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	var result *store.CIBANotification
	if r.DeliveryMode == store.CIBAModePing || r.DeliveryMode == store.CIBAModePush {
		now := s.now()
		result = &store.CIBANotification{
			ID: r.ID + ".result", Kind: store.CIBANotifyResult, RequestDigest: r.Digest, ClientID: r.ClientID,
			NextAttemptAt: now, CreatedAt: now, ExpiresAt: earliest(now.Add(cibaNotifyWindow), r.ExpiresAt),
		}
	}
	decided, err := s.store.DecideCIBARequest(ctx, id, dec, result)
	if err != nil {
		return decided, err
	}
	s.log.Info("backchannel authentication decided", zap.String("request", decided.ID), zap.String("sub", decided.Subject),
		zap.String("client", decided.ClientID), zap.Bool("approved", dec.Approved), zap.String("via", dec.Via))
	if result != nil {
		s.ciba.notifier.wakeUp(result.ID)
	}
	return decided, nil
}

// CIBARequestView is a backchannel authentication request as the admin API
// shows it: never its auth_req_id or notification token.
type CIBARequestView struct {
	// ID is the opaque request id, not the auth_req_id.
	ID             string    `json:"id"`
	ClientID       string    `json:"client_id"`
	ClientName     string    `json:"client_name"`
	User           string    `json:"user"`
	Scopes         []string  `json:"scopes"`
	BindingMessage string    `json:"binding_message"`
	Status         string    `json:"status"`
	ExpiresAt      time.Time `json:"expires_at"`
}

func (s *Server) cibaView(ctx context.Context, r *store.CIBARequest) CIBARequestView {
	name := r.ClientID
	if c, err := s.store.GetClient(ctx, r.ClientID); err == nil {
		name = clientName(c)
	}
	scopes := r.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return CIBARequestView{ID: r.ID, ClientID: r.ClientID, ClientName: name, User: r.Subject, Scopes: scopes,
		BindingMessage: r.BindingMessage, Status: r.Status, ExpiresAt: r.CodeExpiresAt}
}

// PendingCIBARequests lists the pending backchannel authentication
// requests of user (of every user when empty), oldest first.
func (s *Server) PendingCIBARequests(ctx context.Context, user string) ([]CIBARequestView, error) {
	list, err := s.store.ListCIBARequests(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]CIBARequestView, len(list))
	for i, r := range list {
		out[i] = s.cibaView(ctx, r)
	}
	return out, nil
}

// DecideCIBARequest approves or denies the pending request id on behalf of
// the user it names (an operator's decision, through the admin API). It
// returns an error wrapping store.ErrNotFound for an unknown or expired
// request and store.ErrAlreadyUsed, with the request, for one already
// decided.
func (s *Server) DecideCIBARequest(ctx context.Context, id string, approve bool) (*CIBARequestView, error) {
	r, err := s.store.GetCIBARequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	decided, err := s.decideCIBA(ctx, id, store.CIBADecision{Approved: approve, Subject: r.Subject, AuthTime: now, Via: cibaViaAdmin, At: now})
	if decided == nil {
		return nil, err
	}
	v := s.cibaView(ctx, decided)
	return &v, err
}

// earliest is the earlier of two instants.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ValidateCIBAClient checks a client's CIBA registration: a delivery mode
// of poll, ping or push; a notification endpoint for ping and push (see
// CheckNotificationURL; insecure allows http on loopback) and none for
// poll; a request signing alg the client has keys or a client_secret_jwt
// secret for; CIBA settings only on confidential clients with the CIBA
// grant.
func ValidateCIBAClient(c *store.Client, insecure bool) error {
	mode, endpoint, alg := c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint, c.BackchannelAuthenticationRequestSigningAlg
	if !c.HasGrantType(GrantCIBA) {
		if mode != "" || endpoint != "" || alg != "" || c.BackchannelUserCodeParameter {
			return fmt.Errorf("the backchannel_* settings are for clients with the ciba grant (grant_types ciba)")
		}
		return nil
	}
	if c.Public() {
		return fmt.Errorf("a public client cannot use CIBA: it must authenticate at the backchannel authentication endpoint")
	}
	switch mode {
	case "", store.CIBAModePoll:
		if endpoint != "" {
			return fmt.Errorf("backchannel_client_notification_endpoint is used in ping and push modes only, not poll")
		}
	case store.CIBAModePing, store.CIBAModePush:
		if endpoint == "" {
			return fmt.Errorf("backchannel_token_delivery_mode %s needs a backchannel_client_notification_endpoint", mode)
		}
		if err := CheckNotificationURL(endpoint, insecure); err != nil {
			return fmt.Errorf("backchannel_client_notification_endpoint: %w", err)
		}
	default:
		return fmt.Errorf("backchannel_token_delivery_mode %q is not supported; use poll, ping or push", mode)
	}
	if alg != "" {
		a := jose.SignatureAlgorithm(alg)
		switch {
		case slices.Contains(privateKeyJWTAlgs, a):
			if len(c.JWKS) == 0 && c.JWKSURI == "" {
				return fmt.Errorf("backchannel_authentication_request_signing_alg %s needs the client's public keys (jwks, jwks_file or jwks_uri, with private_key_jwt)", alg)
			}
		case slices.Contains(clientSecretJWTAlgs, a):
			if len(c.HMACSecret) < MinHMACSecretBytes(alg) {
				return fmt.Errorf("backchannel_authentication_request_signing_alg %s needs token_endpoint_auth_method client_secret_jwt with a secret of at least %d bytes", alg, MinHMACSecretBytes(alg))
			}
		default:
			return fmt.Errorf("backchannel_authentication_request_signing_alg %q is not supported; use one of %s", alg, algNames(assertionAlgs))
		}
	}
	return nil
}
