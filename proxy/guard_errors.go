package proxy

import (
	"encoding/json"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// authScheme is how the client presented its token.
type authScheme uint8

const (
	schemeNone   authScheme = iota // no access token (or another scheme, e.g. Basic)
	schemeBearer                   // RFC 6750 (header or query)
	schemeDPoP                     // RFC 9449 §7.1
)

// credentials are the access token of a request and how it came.
type credentials struct {
	scheme authScheme
	token  string
	query  bool
}

// credentials reads the access token from the Authorization header or,
// when allowed, the access_token query parameter.
func (g *Guard) credentials(r *http.Request) (credentials, *guardError) {
	var c credentials
	switch h := r.Header["Authorization"]; len(h) {
	case 0:
	case 1:
		var gerr *guardError
		if c.scheme, c.token, gerr = parseAuthorization(h[0]); gerr != nil {
			return c, gerr
		}
	default:
		return c, invalidRequest("the request has more than one Authorization header")
	}
	if !hasQueryToken(r.URL.RawQuery) {
		return c, nil
	}
	vals := r.URL.Query()["access_token"]
	switch {
	case len(vals) == 0:
		return c, nil
	case !g.cfg.AllowQueryToken:
		// RFC 6750 §3.1: a request that "includes an unsupported parameter"
		// is invalid_request (400).
		return c, invalidRequest("access tokens in the query string are not accepted; use the Authorization header")
	case c.scheme != schemeNone:
		// RFC 6750 §3.1: "uses more than one method for including an
		// access token" is invalid_request.
		return c, invalidRequest("the request carries an access token in more than one way")
	case len(vals) > 1:
		return c, invalidRequest("the access_token parameter is repeated")
	case len(vals[0]) > maxTokenLength || !validToken(vals[0]):
		return c, invalidRequest("the access token is malformed")
	}
	return credentials{scheme: schemeBearer, token: vals[0], query: true}, nil
}

// hasQueryToken is a cheap test that a query may hold an access_token
// parameter (percent-encoded names included); it is parsed only then.
func hasQueryToken(rawQuery string) bool {
	return rawQuery != "" && (strings.Contains(rawQuery, "access_token") || strings.Contains(rawQuery, "%"))
}

// parseAuthorization reads an Authorization header value. RFC 6750 §2.1:
//
//	credentials = "Bearer" 1*SP b64token
//	b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// and RFC 9449 §7.1 the same with "DPoP". The scheme is case-insensitive.
// Stricter than the grammar, exactly one space is accepted: a token that
// different parsers would split differently is refused rather than
// guessed at. Other schemes (Basic, …) carry no access token: schemeNone
// without an error.
func parseAuthorization(v string) (authScheme, string, *guardError) {
	if len(v) > maxTokenLength+len("Bearer ") {
		return schemeNone, "", invalidRequest("the Authorization header is too large")
	}
	name, token, _ := strings.Cut(v, " ")
	var scheme authScheme
	switch {
	case strings.EqualFold(name, "Bearer"):
		scheme = schemeBearer
	case strings.EqualFold(name, "DPoP"):
		scheme = schemeDPoP
	default:
		return schemeNone, "", nil
	}
	if token == "" {
		return scheme, "", invalidRequest("the Authorization header has no token")
	}
	if !validToken(token) {
		return scheme, "", invalidRequest("the access token is malformed")
	}
	return scheme, token, nil
}

// validToken reports whether s is an RFC 6750 b64token.
func validToken(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		if !b64tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// b64tokenChars are the characters of a b64token before its padding: a
// table, since every request's token is checked byte by byte.
var b64tokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// guardError is a refusal, rendered the RFC 6750 / RFC 9449 way by refuse.
type guardError struct {
	status int
	// code is the OAuth error code; empty when the request carried no
	// token (RFC 6750 §3.1: no error information then).
	code        string
	description string
	// scope are the scopes the resource requires (insufficient_scope).
	scope string
	// reason and cause are logged, never sent: they name no token or
	// claim value.
	reason string
	cause  error
}

var (
	errNoToken     = &guardError{status: http.StatusUnauthorized, description: "an access token is required"}
	errUnavailable = &guardError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
		description: "the authorization server cannot be reached"}
)

func invalidRequest(description string) *guardError {
	return &guardError{status: http.StatusBadRequest, code: "invalid_request", description: description}
}

func tokenError(description string, cause error) *guardError {
	return &guardError{status: http.StatusUnauthorized, code: "invalid_token", description: description, cause: cause}
}

func dpopError(code, description string, cause error) *guardError {
	return &guardError{status: http.StatusUnauthorized, code: code, description: description, cause: cause}
}

// isDPoP reports whether the error is about the DPoP proof (RFC 9449 §7.1):
// it goes in the DPoP challenge whatever scheme the client used.
func (e *guardError) isDPoP() bool {
	return e.code == "invalid_dpop_proof" || e.code == "use_dpop_nonce"
}

// refuse writes the refusal: status, WWW-Authenticate challenges and a
// small JSON body.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, scheme authScheme, e *guardError) {
	code := e.code
	if code == "" {
		code = "no_token"
	}
	g.metrics.Refused(code)
	// Refusals are the client's business (debug); an issuer that does not
	// answer is the operator's (warn).
	level := zap.DebugLevel
	if e.status == http.StatusServiceUnavailable {
		level = zap.WarnLevel
	}
	if ce := g.log.Check(level, "request refused"); ce != nil {
		fields := []zap.Field{zap.String("error", code), zap.String("description", e.description)}
		if e.reason != "" {
			fields = append(fields, zap.String("reason", e.reason))
		}
		if e.cause != nil {
			// Not zap.Error: its key is "error", the code's, and a JSON
			// log with the key twice keeps only one of them.
			fields = append(fields, zap.NamedError("cause", e.cause))
		}
		ce.Write(fields...)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if e.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	} else {
		g.challenge(h, r, scheme, e)
	}
	if e.isDPoP() && g.dpop.Nonces != nil {
		// RFC 9449 §8.1 (and §9 at a resource): the fresh nonce to use.
		h.Set("DPoP-Nonce", g.dpop.Nonces.NonceAt(g.now()))
	}
	body := struct {
		Error       string `json:"error,omitempty"`
		Description string `json:"error_description"`
	}{e.code, e.description}
	b, _ := json.Marshal(body)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	w.Write(b)
}

// challenge sets the WWW-Authenticate challenges: Bearer (RFC 6750 §3)
// and DPoP (RFC 9449 §7.1), both when both are accepted, the error in the
// one the client used (DPoP for proof errors).
func (g *Guard) challenge(h http.Header, r *http.Request, scheme authScheme, e *guardError) {
	var common strings.Builder
	common.WriteString(`realm=`)
	common.WriteString(quote(g.realm(r)))
	if g.cfg.ServeMetadata {
		// RFC 9728 §5.1.
		common.WriteString(`, resource_metadata=`)
		common.WriteString(quote(g.metadataURL(r)))
	}
	plain := common.String()
	withError := plain
	if e.code != "" {
		withError += `, error=` + quote(e.code) + `, error_description=` + quote(e.description)
		if e.scope != "" {
			withError += `, scope=` + quote(e.scope)
		}
	}
	algs := `, algs=` + quote(g.dpopAlgs)
	if scheme == schemeDPoP || e.isDPoP() || g.cfg.RequireDPoP {
		h.Add("WWW-Authenticate", "DPoP "+withError+algs)
		if !g.cfg.RequireDPoP {
			h.Add("WWW-Authenticate", "Bearer "+plain)
		}
		return
	}
	h.Add("WWW-Authenticate", "Bearer "+withError)
	h.Add("WWW-Authenticate", "DPoP "+plain+algs)
}

// quote makes s an RFC 9110 quoted-string.
func quote(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// realm is the challenges' realm.
func (g *Guard) realm(r *http.Request) string {
	if g.cfg.Realm != "" {
		return g.cfg.Realm
	}
	if g.cfg.Resource != "" {
		return g.cfg.Resource
	}
	return g.origin(r)
}

// origin is scheme://host of the API as clients reach it.
func (g *Guard) origin(r *http.Request) string {
	if g.cfg.BaseURL != "" {
		return g.cfg.BaseURL
	}
	return requestOrigin(r)
}
