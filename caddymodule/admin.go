package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI manages clients, users, APIs and signing keys at run time
// through Caddy's admin endpoint. Records created here are persisted in the
// store and survive config reloads; secrets are shown once, at creation.
//
//	GET|POST          /portcullis/clients
//	GET|PUT|DELETE    /portcullis/clients/{client_id}
//	GET|POST          /portcullis/users
//	GET|PUT|DELETE    /portcullis/users/{username}
//	PUT|DELETE        /portcullis/users/{username}/user_code
//	GET|POST          /portcullis/apis
//	GET|PUT|DELETE    /portcullis/apis?identifier={identifier}
//	GET               /portcullis/keys
//	POST              /portcullis/keys/rotate
//	GET               /portcullis/sessions[?sub={subject}]
//	DELETE            /portcullis/sessions/{id}
//	DELETE            /portcullis/sessions?sub={subject}
//	GET               /portcullis/ciba[?user={username}]
//	POST              /portcullis/ciba/{id}/approve
//	POST              /portcullis/ciba/{id}/deny
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.portcullis", New: func() caddy.Module { return new(AdminAPI) }}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/portcullis/", Handler: caddy.AdminHandlerFunc(serveAdmin)}}
}

func adminErr(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// activeApp finds the running portcullis app: the admin endpoint outlives
// config reloads, so it looks the app up on every request.
func activeApp() (*App, error) {
	app, err := caddy.ActiveContext().AppIfConfigured("portcullis")
	if err != nil || app == nil {
		return nil, adminErr(http.StatusNotFound, "the portcullis app is not configured")
	}
	return app.(*App), nil
}

func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	app, err := activeApp()
	if err != nil {
		return err
	}
	return app.routeAdmin(w, r)
}

// routeAdmin serves an admin request below /portcullis/ with the app's
// records.
func (a *App) routeAdmin(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/portcullis/")
	collection, id, _ := strings.Cut(rest, "/")
	if collection == "sessions" {
		return a.adminSessions(w, r, id)
	}
	if a.server == nil {
		return adminErr(http.StatusNotFound, "the embedded authorization server is off (no issuer): only /portcullis/sessions is available")
	}
	switch collection {
	case "clients":
		return a.adminClients(w, r, id)
	case "users":
		return a.adminUsers(w, r, id)
	case "apis":
		if id == "" {
			id = r.URL.Query().Get("identifier")
		}
		return a.adminAPIs(w, r, id)
	case "keys":
		return a.adminKeys(w, r, id)
	case "ciba":
		return a.adminCIBA(w, r, id)
	}
	return adminErr(http.StatusNotFound, "unknown portcullis resource %q: use clients, users, apis, keys, sessions or ciba", collection)
}

func decodeBody(r *http.Request, dst any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return adminErr(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	return nil
}

func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func notFoundOr(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return adminErr(http.StatusNotFound, "%s not found", what)
	}
	return err
}

// clientView is a client as the admin API shows it: never the secret,
// its digest, or the HMAC key of a client_secret_jwt client (the empty
// fields shadow the record's). ClientSecret is a generated secret, shown
// once at creation.
type clientView struct {
	*store.Client
	SecretDigest string `json:"secret_digest,omitempty"`
	HMACSecret   string `json:"hmac_secret,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
}

func (a *App) adminClients(w http.ResponseWriter, r *http.Request, id string) error {
	ctx := r.Context()
	switch {
	case id == "" && r.Method == http.MethodGet:
		list, err := a.store.ListClients(ctx)
		if err != nil {
			return err
		}
		views := make([]clientView, len(list))
		for i, c := range list {
			views[i] = clientView{Client: c}
		}
		return reply(w, http.StatusOK, views)
	case id != "" && r.Method == http.MethodGet:
		c, err := a.store.GetClient(ctx, id)
		if err != nil {
			return notFoundOr(err, "client "+id)
		}
		return reply(w, http.StatusOK, clientView{Client: c})
	case (id == "" && r.Method == http.MethodPost) || (id != "" && r.Method == http.MethodPut):
		var cfg ClientConfig
		if err := decodeBody(r, &cfg); err != nil {
			return err
		}
		if id != "" {
			if cfg.ID != "" && cfg.ID != id {
				return adminErr(http.StatusBadRequest, "client_id in the body (%s) differs from the path (%s)", cfg.ID, id)
			}
			cfg.ID = id
		}
		prev, err := a.store.GetClient(ctx, cfg.ID)
		exists := err == nil
		if r.Method == http.MethodPost && exists {
			return adminErr(http.StatusConflict, "client %s already exists; PUT /portcullis/clients/%s to replace it", cfg.ID, cfg.ID)
		}
		if r.Method == http.MethodPut && !exists {
			return adminErr(http.StatusNotFound, "client %s not found", cfg.ID)
		}
		if _, err := a.store.GetUser(ctx, cfg.ID); err == nil {
			return adminErr(http.StatusConflict, "%v", errNameCollision(cfg.ID))
		}
		secret, shown := cfg.Secret, ""
		keepDigest := false
		csjwt := cfg.TokenEndpointAuthMethod == flows.AuthMethodSecretJWT
		if !cfg.Public && secret == "" && cfg.TokenEndpointAuthMethod != flows.AuthMethodPrivateKeyJWT {
			switch {
			case exists && csjwt && prev.HMACSecret != "":
				secret = prev.HMACSecret // unchanged: the HMAC key is kept as is
			case exists && !csjwt && prev.SecretDigest != "":
				keepDigest, secret = true, "unchanged"
			case csjwt:
				// 86 characters: long enough for HS512 (RFC 7518 §3.2).
				secret = flows.NewSecret() + flows.NewSecret()
				shown = secret
			default:
				secret = flows.NewSecret()
				shown = secret
			}
		}
		rec, err := cfg.ClientRecord(secret)
		if err == nil {
			err = a.checkCIBAEndpoint(rec)
		}
		if err != nil {
			return adminErr(http.StatusBadRequest, "%v", err)
		}
		if keepDigest {
			rec.SecretDigest = prev.SecretDigest
		}
		for aud := range rec.APIAccess {
			if _, err := a.store.GetAPI(ctx, aud); err != nil {
				return adminErr(http.StatusBadRequest, "api_access names %s, which is not a defined api", aud)
			}
		}
		rec.Source, rec.CreatedAt = "admin", time.Now()
		if exists {
			rec.CreatedAt = prev.CreatedAt
		}
		if err := a.store.PutClient(ctx, rec); err != nil {
			return err
		}
		status := http.StatusCreated
		if exists {
			status = http.StatusOK
		}
		return reply(w, status, clientView{Client: rec, ClientSecret: shown})
	case id != "" && r.Method == http.MethodDelete:
		if _, err := a.store.GetClient(ctx, id); err != nil {
			return notFoundOr(err, "client "+id)
		}
		if err := a.store.DeleteClient(ctx, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return adminErr(http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
}

// userView is a user as the admin API shows it: never the password hash
// or the hash of the CIBA user code (the empty fields shadow the
// record's).
type userView struct {
	*store.User
	PasswordHash            string `json:"password_hash,omitempty"`
	BackchannelUserCodeHash string `json:"backchannel_user_code_hash,omitempty"`
	// HasUserCode says whether a CIBA user code is set.
	HasUserCode bool `json:"has_user_code,omitempty"`
}

func newUserView(u *store.User) userView {
	return userView{User: u, HasUserCode: u.BackchannelUserCodeHash != ""}
}

func (a *App) adminUsers(w http.ResponseWriter, r *http.Request, username string) error {
	ctx := r.Context()
	if name, sub, ok := strings.Cut(username, "/"); ok {
		if sub != "user_code" {
			return adminErr(http.StatusNotFound, "unknown user resource %q: use /portcullis/users/{username}/user_code", sub)
		}
		return a.adminUserCode(w, r, name)
	}
	switch {
	case username == "" && r.Method == http.MethodGet:
		list, err := a.store.ListUsers(ctx)
		if err != nil {
			return err
		}
		views := make([]userView, len(list))
		for i, u := range list {
			views[i] = newUserView(u)
		}
		return reply(w, http.StatusOK, views)
	case username != "" && r.Method == http.MethodGet:
		u, err := a.store.GetUser(ctx, username)
		if err != nil {
			return notFoundOr(err, "user "+username)
		}
		return reply(w, http.StatusOK, newUserView(u))
	case (username == "" && r.Method == http.MethodPost) || (username != "" && r.Method == http.MethodPut):
		var cfg UserConfig
		if err := decodeBody(r, &cfg); err != nil {
			return err
		}
		if username != "" {
			if cfg.Username != "" && cfg.Username != username {
				return adminErr(http.StatusBadRequest, "username in the body differs from the path")
			}
			cfg.Username = username
		}
		prev, err := a.store.GetUser(ctx, cfg.Username)
		exists := err == nil
		if r.Method == http.MethodPost && exists {
			return adminErr(http.StatusConflict, "user %s already exists", cfg.Username)
		}
		if _, err := a.store.GetClient(ctx, cfg.Username); err == nil {
			return adminErr(http.StatusConflict, "%v", errNameCollision(cfg.Username))
		}
		if r.Method == http.MethodPut && !exists {
			return adminErr(http.StatusNotFound, "user %s not found", cfg.Username)
		}
		hash := cfg.PasswordHash
		switch {
		case hash != "":
			if _, err := flows.VerifyPassword(hash, ""); err != nil {
				return adminErr(http.StatusBadRequest, "password_hash: %v", err)
			}
		case cfg.Password != "":
			if hash, err = flows.HashPassword(cfg.Password); err != nil {
				return err
			}
		case exists:
			hash = prev.PasswordHash
		default:
			return adminErr(http.StatusBadRequest, "password or password_hash is required")
		}
		rec, err := cfg.UserRecord(hash)
		if err != nil {
			return adminErr(http.StatusBadRequest, "%v", err)
		}
		rec.Source, rec.CreatedAt = "admin", time.Now()
		status := http.StatusCreated
		if exists {
			rec.CreatedAt, status = prev.CreatedAt, http.StatusOK
			rec.BackchannelUserCodeHash = prev.BackchannelUserCodeHash
		}
		if err := a.store.PutUser(ctx, rec); err != nil {
			return err
		}
		return reply(w, status, newUserView(rec))
	case username != "" && r.Method == http.MethodDelete:
		if _, err := a.store.GetUser(ctx, username); err != nil {
			return notFoundOr(err, "user "+username)
		}
		if err := a.store.DeleteUser(ctx, username); err != nil {
			return err
		}
		// A deleted user's tokens stop working at once.
		if _, err := a.store.RevokeGrantsOfSubject(ctx, username, ""); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return adminErr(http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
}

func (a *App) adminAPIs(w http.ResponseWriter, r *http.Request, identifier string) error {
	ctx := r.Context()
	switch {
	case identifier == "" && r.Method == http.MethodGet:
		list, err := a.store.ListAPIs(ctx)
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, list)
	case identifier != "" && r.Method == http.MethodGet:
		api, err := a.store.GetAPI(ctx, identifier)
		if err != nil {
			return notFoundOr(err, "api "+identifier)
		}
		return reply(w, http.StatusOK, api)
	case r.Method == http.MethodPost || (identifier != "" && r.Method == http.MethodPut):
		var cfg APIConfig
		if err := decodeBody(r, &cfg); err != nil {
			return err
		}
		if identifier != "" {
			if cfg.Identifier != "" && cfg.Identifier != identifier {
				return adminErr(http.StatusBadRequest, "identifier in the body differs from the query")
			}
			cfg.Identifier = identifier
		}
		rec, err := cfg.APIRecord()
		if err != nil {
			return adminErr(http.StatusBadRequest, "%v", err)
		}
		prev, err := a.store.GetAPI(ctx, rec.Identifier)
		exists := err == nil
		if r.Method == http.MethodPost && exists {
			return adminErr(http.StatusConflict, "api %s already exists", rec.Identifier)
		}
		if r.Method == http.MethodPut && !exists {
			return adminErr(http.StatusNotFound, "api %s not found", rec.Identifier)
		}
		rec.Source, rec.CreatedAt = "admin", time.Now()
		status := http.StatusCreated
		if exists {
			rec.CreatedAt, status = prev.CreatedAt, http.StatusOK
		}
		if err := a.store.PutAPI(ctx, rec); err != nil {
			return err
		}
		return reply(w, status, rec)
	case identifier != "" && r.Method == http.MethodDelete:
		if _, err := a.store.GetAPI(ctx, identifier); err != nil {
			return notFoundOr(err, "api "+identifier)
		}
		if err := a.store.DeleteAPI(ctx, identifier); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return adminErr(http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
}

func (a *App) adminKeys(w http.ResponseWriter, r *http.Request, action string) error {
	switch {
	case action == "" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(a.keys.JWKS())
		return err
	case action == "rotate" && r.Method == http.MethodPost:
		kid, err := a.keys.Rotate(r.Context())
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, map[string]string{"kid": kid})
	}
	return adminErr(http.StatusMethodNotAllowed, "use GET /portcullis/keys or POST /portcullis/keys/rotate")
}

// sessionView is a login gateway session as the admin API shows it:
// who and when, never its tokens.
type sessionView struct {
	ID        string    `json:"id"`
	Issuer    string    `json:"iss"`
	Subject   string    `json:"sub"`
	SID       string    `json:"sid,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// adminSessions lists and revokes the login gateway's server-side
// sessions (session_store server).
func (a *App) adminSessions(w http.ResponseWriter, r *http.Request, id string) error {
	ctx := r.Context()
	sub := r.URL.Query().Get("sub")
	switch {
	case id == "" && r.Method == http.MethodGet:
		list, err := a.store.ListGatewaySessions(ctx, sub)
		if err != nil {
			return err
		}
		views := make([]sessionView, len(list))
		for i, s := range list {
			views[i] = sessionView{ID: s.ID, Issuer: s.Issuer, Subject: s.Subject, SID: s.SID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
		}
		return reply(w, http.StatusOK, views)
	case id != "" && r.Method == http.MethodDelete:
		if _, err := a.store.GetGatewaySession(ctx, id); err != nil {
			return notFoundOr(err, "session "+id)
		}
		if err := a.store.DeleteGatewaySession(ctx, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case id == "" && r.Method == http.MethodDelete && sub != "":
		n, err := a.store.DeleteGatewaySessions(ctx, "", sub, "")
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, map[string]int{"revoked": n})
	}
	return adminErr(http.StatusMethodNotAllowed, "use GET /portcullis/sessions[?sub=], DELETE /portcullis/sessions/{id} or DELETE /portcullis/sessions?sub=")
}

// maxUserCodeLen bounds a CIBA user code.
const maxUserCodeLen = 64

// adminUserCode sets (PUT {"user_code": "..."}) or removes (DELETE) the
// CIBA user code of a user, stored as an argon2id hash.
func (a *App) adminUserCode(w http.ResponseWriter, r *http.Request, username string) error {
	ctx := r.Context()
	u, err := a.store.GetUser(ctx, username)
	if err != nil {
		return notFoundOr(err, "user "+username)
	}
	switch r.Method {
	case http.MethodPut:
		var body struct {
			UserCode string `json:"user_code"`
		}
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		if body.UserCode == "" || len(body.UserCode) > maxUserCodeLen {
			return adminErr(http.StatusBadRequest, "user_code must be 1 to %d characters", maxUserCodeLen)
		}
		if u.BackchannelUserCodeHash, err = flows.HashPassword(body.UserCode); err != nil {
			return err
		}
	case http.MethodDelete:
		u.BackchannelUserCodeHash = ""
	default:
		return adminErr(http.StatusMethodNotAllowed, "use PUT or DELETE /portcullis/users/%s/user_code", username)
	}
	if err := a.store.PutUser(ctx, u); err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return reply(w, http.StatusOK, newUserView(u))
}

// adminCIBA lists pending CIBA requests and approves or denies them on
// behalf of the user they name.
func (a *App) adminCIBA(w http.ResponseWriter, r *http.Request, rest string) error {
	ctx := r.Context()
	if rest == "" {
		if r.Method != http.MethodGet {
			return adminErr(http.StatusMethodNotAllowed, "use GET /portcullis/ciba[?user=]")
		}
		list, err := a.server.PendingCIBARequests(ctx, r.URL.Query().Get("user"))
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, list)
	}
	id, action, _ := strings.Cut(rest, "/")
	if r.Method != http.MethodPost || (action != "approve" && action != "deny") {
		return adminErr(http.StatusMethodNotAllowed, "use POST /portcullis/ciba/{id}/approve or /portcullis/ciba/{id}/deny")
	}
	view, err := a.server.DecideCIBARequest(ctx, id, action == "approve")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return adminErr(http.StatusNotFound, "CIBA request %s not found or expired", id)
	case errors.Is(err, store.ErrAlreadyUsed):
		status := "decided"
		if view != nil {
			status = view.Status
		}
		return adminErr(http.StatusConflict, "CIBA request %s was already decided (%s)", id, status)
	case err != nil:
		return err
	}
	return reply(w, http.StatusOK, view)
}

// Interface guard
var _ caddy.AdminRouter = AdminAPI{}
