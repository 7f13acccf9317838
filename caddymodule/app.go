// Package caddymodule registers Portcullis with Caddy: the `portcullis` app
// (global options block), the `oauth_server` HTTP handler, and the admin API
// routes under /portcullis/. It only translates configuration into the
// store, keys and flows packages.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/keys"
	"github.com/portcullis-gw/portcullis/store"
	"github.com/portcullis-gw/portcullis/store/boltstore"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `portcullis` Caddy app: the embedded authorization server's
// state (store, signing keys, users, clients, APIs). HTTP sites serve it
// with the `oauth_server` handler.
type App struct {
	// Storage selects where state is kept. Default: a bbolt file
	// portcullis.db in Caddy's data directory.
	Storage *StorageConfig `json:"storage,omitempty"`
	// Issuer is the issuer identifier, e.g. https://auth.example.com.
	// Required.
	Issuer string `json:"issuer,omitempty"`
	// SigningAlg is the JWT signing algorithm: ES256, RS256, PS256 or
	// EdDSA. Default: ES256.
	SigningAlg string `json:"signing_alg,omitempty"`
	// KeyRotation is how long a signing key signs before a new one takes
	// over; the old one stays in the JWKS until its tokens expired.
	// Default: 30 days.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
	// CookieSecret encrypts the SSO cookie (at least 32 bytes; placeholders
	// such as {env.X} and {file./path} are expanded). Default: a random
	// secret generated once and kept in the store.
	CookieSecret string `json:"cookie_secret,omitempty"`
	// InsecureCookies drops the Secure flag and __Host- prefix for plain
	// HTTP development. Logged as a warning.
	InsecureCookies bool `json:"insecure_cookies,omitempty"`
	// AccessTokenTTL is the default access token lifetime. Default: 1h.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`
	// IDTokenTTL is the ID token lifetime. Default: 1h.
	IDTokenTTL caddy.Duration `json:"id_token_ttl,omitempty"`
	// RefreshTokenTTL is the absolute lifetime of a grant and its refresh
	// tokens. Default: 720h.
	RefreshTokenTTL caddy.Duration `json:"refresh_token_ttl,omitempty"`
	// CodeTTL is the authorization code lifetime. Default: 60s.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`
	// SessionTTL is the SSO session lifetime. Default: 24h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// LoginThrottle bounds failed sign-ins, shared by the login page, the
	// device and CIBA pages and the password grant. Default: 5 failures per
	// user and 20 per client IP, one forgiven every minute.
	LoginThrottle *LoginThrottleConfig `json:"login_throttle,omitempty"`
	// DeviceCodeTTL is how long a device authorization request (RFC 8628)
	// waits for the user: the lifetime of its device_code and user_code.
	// Default: 10m.
	DeviceCodeTTL caddy.Duration `json:"device_code_ttl,omitempty"`
	// DevicePollInterval is the minimum time between a device's polls of
	// the token endpoint, in whole seconds (rounded up); faster polls are
	// answered slow_down and the device's interval grows by 5s. Default: 5s.
	DevicePollInterval caddy.Duration `json:"device_poll_interval,omitempty"`
	// CIBA configures Client-Initiated Backchannel Authentication (the
	// /bc-authorize endpoint and the /ciba approval page).
	CIBA *CIBAConfig `json:"ciba,omitempty"`
	// Brand customises the login and consent pages.
	Brand *BrandConfig `json:"brand,omitempty"`
	// Users defined in the config. They are written to the store on every
	// load; users created through the admin API are kept.
	Users []UserConfig `json:"users,omitempty"`
	// Clients defined in the config, likewise.
	Clients []ClientConfig `json:"clients,omitempty"`
	// APIs defined in the config, likewise.
	APIs []APIConfig `json:"apis,omitempty"`

	store  store.Store
	dbPath string
	keys   *keys.Manager
	server *flows.Server
	logger *zap.Logger
	cancel context.CancelFunc
	// stopped is closed when the background work has returned, after
	// writing what it still had queued (used client assertion ids, CIBA
	// notifications): Stop waits for it so nothing queued is lost.
	stopped chan struct{}
}

// LoginThrottleConfig bounds failed sign-ins: each failure spends one
// token of the user's and of the client IP's bucket.
type LoginThrottleConfig struct {
	// PerUser is the burst of failures allowed per username. Default: 5.
	PerUser int `json:"per_user,omitempty"`
	// PerIP is the burst of failures allowed per client IP. Default: 20.
	PerIP int `json:"per_ip,omitempty"`
	// Refill is how often one failure is forgiven. Default: 1m.
	Refill caddy.Duration `json:"refill,omitempty"`
}

func (c *LoginThrottleConfig) flows() flows.ThrottleConfig {
	if c == nil {
		return flows.ThrottleConfig{}
	}
	return flows.ThrottleConfig{PerUser: c.PerUser, PerIP: c.PerIP, Refill: time.Duration(c.Refill)}
}

// CIBAConfig configures OpenID Connect Client-Initiated Backchannel
// Authentication.
type CIBAConfig struct {
	// RequestTTL is the lifetime of an auth_req_id when the client asks
	// for none; a client's requested_expiry is honoured up to 30m.
	// Default: 5m; at most 30m.
	RequestTTL caddy.Duration `json:"request_ttl,omitempty"`
	// PollInterval is the minimum time between polls of the token
	// endpoint, in whole seconds; faster polls get slow_down. Default: 5s.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
	// MaxPendingPerUser bounds the requests waiting for one user's
	// decision; more are refused (429 access_denied). Default: 5.
	MaxPendingPerUser int `json:"max_pending_per_user,omitempty"`
	// RateLimitPerClient is a token bucket per client on /bc-authorize.
	// Default: 100 per 1s.
	RateLimitPerClient *RateLimitConfig `json:"rate_limit_per_client,omitempty"`
	// RateLimitPerUser is a token bucket per user, all clients together.
	// Default: 10 per 1m.
	RateLimitPerUser *RateLimitConfig `json:"rate_limit_per_user,omitempty"`
	// Webhook, when set, receives every new request as a JWT signed with
	// the server's key (typ ciba-webhook+jwt), with approve and deny links
	// for an authenticator app.
	Webhook string `json:"webhook,omitempty"`
	// InsecureNotificationEndpoints allows http:// notification endpoints
	// and webhook on loopback hosts, for development only. Logged as a
	// warning.
	InsecureNotificationEndpoints bool `json:"insecure_notification_endpoints,omitempty"`
}

// RateLimitConfig is a token bucket: Burst requests at once, refilled at
// Burst per Interval.
type RateLimitConfig struct {
	Burst    int            `json:"burst"`
	Interval caddy.Duration `json:"interval"`
}

func (c *CIBAConfig) flows() flows.CIBAConfig {
	if c == nil {
		return flows.CIBAConfig{}
	}
	out := flows.CIBAConfig{
		RequestTTL: time.Duration(c.RequestTTL), PollInterval: time.Duration(c.PollInterval),
		MaxPendingPerUser: c.MaxPendingPerUser, WebhookURL: c.Webhook,
		InsecureNotificationEndpoints: c.InsecureNotificationEndpoints,
	}
	if l := c.RateLimitPerClient; l != nil {
		out.ClientRate = flows.RateLimit{Burst: l.Burst, Interval: time.Duration(l.Interval)}
	}
	if l := c.RateLimitPerUser; l != nil {
		out.UserRate = flows.RateLimit{Burst: l.Burst, Interval: time.Duration(l.Interval)}
	}
	return out
}

// StorageConfig selects the storage backend.
type StorageConfig struct {
	// Backend is "bbolt" (the only embedded backend). Default: bbolt.
	Backend string `json:"backend,omitempty"`
	// Path is the bbolt file. Placeholders are expanded. Default:
	// portcullis.db in Caddy's data directory.
	Path string `json:"path,omitempty"`
}

// BrandConfig is the look of the login and consent pages.
type BrandConfig struct {
	// Name is shown on every page. Default: Portcullis.
	Name string `json:"name,omitempty"`
	// Color is the primary colour (#rgb or #rrggbb). Default: #2b59c3.
	Color string `json:"color,omitempty"`
	// LogoURL is an optional logo image URL.
	LogoURL string `json:"logo_url,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "portcullis", New: func() caddy.Module { return new(App) }}
}

// stores shares one open bbolt file between the old and new app during a
// config reload: bbolt locks the file, so opening it twice would block.
var stores = caddy.NewUsagePool()

type pooledStore struct{ *boltstore.Store }

func (p pooledStore) Destruct() error { return p.Store.Close() }

// Provision opens the store, loads or creates the signing keys, writes the
// configured users, clients and APIs, and builds the authorization server.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	if a.Storage == nil {
		a.Storage = &StorageConfig{}
	}
	if a.Storage.Backend != "" && a.Storage.Backend != "bbolt" {
		return fmt.Errorf("portcullis: storage backend %q is not available; use bbolt", a.Storage.Backend)
	}
	a.dbPath = repl.ReplaceKnown(a.Storage.Path, "")
	if a.dbPath == "" {
		a.dbPath = caddy.AppDataDir() + "/portcullis.db"
	}
	val, _, err := stores.LoadOrNew(a.dbPath, func() (caddy.Destructor, error) {
		st, err := boltstore.Open(a.dbPath)
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return fmt.Errorf("portcullis: %w", err)
	}
	a.store = val.(pooledStore).Store
	if a.Issuer == "" {
		// Storage only (server-side gateway sessions): no embedded server.
		if len(a.Users)+len(a.Clients)+len(a.APIs) > 0 {
			return errors.New("portcullis: users, clients and apis need an issuer (set `issuer https://auth.example.com`)")
		}
		a.logger.Info("no issuer configured: the embedded authorization server is off; storage only")
		return nil
	}

	maxTokenTTL := max(time.Duration(a.AccessTokenTTL), time.Duration(a.IDTokenTTL), time.Hour)
	a.keys, err = keys.New(ctx, a.store, keys.Options{
		Alg: a.SigningAlg, RotateEvery: time.Duration(a.KeyRotation), RetainFor: maxTokenTTL + 5*time.Minute,
	})
	if err != nil {
		return fmt.Errorf("portcullis: signing keys: %w", err)
	}
	if err := a.seed(ctx, repl); err != nil {
		return fmt.Errorf("portcullis: %w", err)
	}
	secret, err := a.cookieSecret(ctx, repl)
	if err != nil {
		return fmt.Errorf("portcullis: %w", err)
	}
	if a.InsecureCookies {
		a.logger.Warn("insecure_cookies is on: SSO cookies are sent over plain HTTP; use this for local development only")
	}
	cfg := flows.Config{
		Issuer: a.Issuer, Store: a.store, Keys: a.keys, Logger: a.logger.Named("server"),
		CookieSecrets: [][]byte{secret}, InsecureCookies: a.InsecureCookies,
		AccessTokenTTL: time.Duration(a.AccessTokenTTL), IDTokenTTL: time.Duration(a.IDTokenTTL),
		RefreshTokenTTL: time.Duration(a.RefreshTokenTTL), CodeTTL: time.Duration(a.CodeTTL),
		SessionTTL:    time.Duration(a.SessionTTL),
		DeviceCodeTTL: time.Duration(a.DeviceCodeTTL), DevicePollInterval: time.Duration(a.DevicePollInterval),
		LoginThrottle: a.LoginThrottle.flows(),
		CIBA:          a.CIBA.flows(),
	}
	if a.CIBA != nil && a.CIBA.InsecureNotificationEndpoints {
		a.logger.Warn("ciba insecure_notification_endpoints is on: CIBA notifications and the webhook may use plain http on loopback; use this for local development only")
	}
	if a.Brand != nil {
		cfg.Brand = flows.Brand{Name: a.Brand.Name, Color: a.Brand.Color, LogoURL: a.Brand.LogoURL}
	}
	a.server, err = flows.New(cfg)
	if err != nil {
		return fmt.Errorf("portcullis: %w", err)
	}
	return nil
}

func (a *App) cookieSecret(ctx context.Context, repl *caddy.Replacer) ([]byte, error) {
	if a.CookieSecret != "" {
		s := repl.ReplaceKnown(a.CookieSecret, "")
		if len(s) < 32 {
			return nil, errors.New("cookie_secret must be at least 32 characters (try: openssl rand -base64 32)")
		}
		return []byte(s), nil
	}
	return a.store.GetOrCreateSecret(ctx, "cookie", func() ([]byte, error) { return []byte(flows.NewSecret()), nil })
}

// Validate rejects configuration that cannot work.
func (a *App) Validate() error {
	seen := map[string]bool{}
	for _, c := range a.Clients {
		if seen[c.ID] {
			return fmt.Errorf("portcullis: client %q is defined twice", c.ID)
		}
		seen[c.ID] = true
	}
	for _, u := range a.Users {
		if seen[u.Username] {
			return fmt.Errorf("portcullis: %w", errNameCollision(u.Username))
		}
	}
	deviceTTL := time.Duration(a.DeviceCodeTTL)
	if deviceTTL == 0 {
		deviceTTL = 10 * time.Minute // the flows default
	}
	if time.Duration(a.DevicePollInterval) >= deviceTTL {
		return fmt.Errorf("portcullis: device_poll_interval %s must be shorter than device_code_ttl %s",
			time.Duration(a.DevicePollInterval), deviceTTL)
	}
	if a.CIBA != nil {
		cfg := a.CIBA.flows()
		if cfg.RequestTTL == 0 {
			cfg.RequestTTL = 5 * time.Minute // the flows default
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("portcullis: %w", err)
		}
		for _, l := range []*RateLimitConfig{a.CIBA.RateLimitPerClient, a.CIBA.RateLimitPerUser} {
			if l != nil && (l.Burst <= 0 || l.Interval <= 0) {
				return errors.New("portcullis: ciba rate limits need a positive burst and interval")
			}
		}
		if a.CIBA.MaxPendingPerUser < 0 {
			return errors.New("portcullis: ciba max_pending_per_user must be positive")
		}
	}
	return nil
}

// Start runs the background work: sweeping expired records and refreshing
// and rotating signing keys.
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.stopped = make(chan struct{})
	if a.server == nil {
		go func() {
			defer close(a.stopped)
			a.sweep(ctx, time.Minute)
		}()
		return nil
	}
	go func() {
		defer close(a.stopped)
		a.server.Background(ctx, time.Minute)
	}()
	a.logger.Info("authorization server ready", zap.String("issuer", a.server.Issuer()),
		zap.String("discovery", a.server.Issuer()+flows.PathDiscovery), zap.String("storage", a.dbPath))
	return nil
}

// sweep collects expired records when there is no authorization server
// to do it.
func (a *App) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.store.Sweep(ctx, time.Now()); err != nil {
				a.logger.Error("sweeping expired records", zap.Error(err))
			}
		}
	}
}

// stopTimeout bounds how long Stop waits for the background work to
// write what it has queued.
const stopTimeout = 10 * time.Second

// Stop ends the background work and waits (bounded) for it to finish
// writing what it had queued, so a restart or reload loses nothing.
func (a *App) Stop() error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	select {
	case <-a.stopped:
	case <-time.After(stopTimeout):
		a.logger.Warn("background work did not finish in time; stopping anyway", zap.Duration("waited", stopTimeout))
	}
	return nil
}

// Cleanup releases this app's hold on the store.
func (a *App) Cleanup() error {
	if a.dbPath != "" && a.store != nil {
		_, err := stores.Delete(a.dbPath)
		return err
	}
	return nil
}

// Server returns the authorization server, for the oauth_server handler.
func (a *App) Server() *flows.Server { return a.server }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
