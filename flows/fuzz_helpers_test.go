package flows

// What the endpoint fuzz targets (fuzz_backchannel_test.go,
// fuzz_pages_test.go) share: the server they run against, a handler call
// that does not touch the *testing.F (whose methods a fuzz function may not
// call), and the checks of an answer that hold whatever the input.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/net/html"

	"github.com/portcullis-gw/portcullis/store"
)

// cibaHMACID is a CIBA client that authenticates with client_secret_jwt
// and may sign login_hint_tokens with its secret, without having to send
// request objects.
const (
	cibaHMACID     = "ciba-hmac"
	cibaHMACSecret = "ciba-hmac-secret-long-enough-for-hs512-0123456789-abcdefghijklmnop"
)

// newFuzzEnv is the server the endpoint fuzz targets run against: the
// seeded world with the device and CIBA clients, no webhook, and the CIBA
// rate limits, pending cap and client assertion replay cache bound lifted
// so that millions of requests at one instant keep reaching the code
// behind them (the limits have tests of their own).
func newFuzzEnv(tb testing.TB) *cibaEnv {
	tb.Helper()
	e := newCIBAServer(tb, func(c *Config) {
		c.CIBA.WebhookURL = ""
		c.CIBA.ClientRate = RateLimit{Burst: 1 << 30, Interval: time.Second}
		c.CIBA.UserRate = RateLimit{Burst: 1 << 30, Interval: time.Second}
		c.CIBA.MaxPendingPerUser = 1 << 30
	})
	addDeviceClients(tb, e.store)
	c := &store.Client{ID: cibaHMACID, Name: "HMAC CIBA", TokenEndpointAuthMethod: AuthMethodSecretJWT,
		HMACSecret: cibaHMACSecret, SecretDigest: DigestSecret(cibaHMACSecret), GrantTypes: []string{GrantCIBA}}
	if err := ValidateCIBAClient(c, false); err != nil {
		tb.Fatal(err)
	}
	if err := e.store.PutClient(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	// Targets that sign a fresh client assertion for every input would
	// fill the replay cache (its entries outlive the frozen clock) and meet
	// its fail-closed 503 after a few minutes: raise its bound.
	e.srv.assertions.used.limit = 1 << 26
	return e
}

// serveFuzz runs r through h in-process and reads the answer.
func serveFuzz(h http.Handler, r *http.Request) *response {
	if r.RemoteAddr == "" || r.RemoteAddr == "192.0.2.1:1234" {
		r.RemoteAddr = defaultTestRemoteAddr
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: string(body), Cookies: res.Cookies()}
}

// fuzzRequest is a request to path below the test issuer: a GET with
// query, or a form POST with body; cookie is sent as the Cookie header.
func fuzzRequest(post bool, path, query, body, cookie string) *http.Request {
	var r *http.Request
	if post {
		r = httptest.NewRequest(http.MethodPost, testIssuer+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(http.MethodGet, testIssuer+path, nil)
	}
	r.URL.RawQuery = query
	r.RequestURI = r.URL.RequestURI()
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return r
}

// oauthErrorStatus is the status each error code of a JSON endpoint is
// sent with: 401 for a failed client authentication (RFC 6749 §5.2), 429
// for a CIBA request over a limit, 400 for everything else a client can
// get wrong.
func oauthErrorStatus(code string) int {
	switch code {
	case "invalid_client":
		return http.StatusUnauthorized
	case "access_denied":
		return http.StatusTooManyRequests
	}
	return http.StatusBadRequest
}

// checkJSONError checks the answer of a JSON endpoint to a request it
// refused: no server error, a JSON object with one of codes, sent with
// the status that code goes with, as application/json.
func checkJSONError(t *testing.T, res *response, codes ...string) map[string]any {
	t.Helper()
	m := checkJSONObject(t, res)
	code, _ := m["error"].(string)
	if !slices.Contains(codes, code) {
		t.Fatalf("error %q (status %d) is not one of %v: %s", code, res.Status, codes, res.Body)
	}
	if want := oauthErrorStatus(code); res.Status != want {
		t.Fatalf("error %s sent with status %d, want %d: %s", code, res.Status, want, res.Body)
	}
	if code == "invalid_client" && res.Header.Get("WWW-Authenticate") != "" && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("invalid_client with challenge %q", res.Header.Get("WWW-Authenticate"))
	}
	return m
}

// checkJSONObject requires a non-5xx answer whose body is a JSON object
// sent as application/json, and returns it.
func checkJSONObject(t *testing.T, res *response) map[string]any {
	t.Helper()
	if res.Status >= 500 {
		t.Fatalf("server error %d: %s", res.Status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d with content type %q: %s", res.Status, ct, res.Body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(res.Body), &m); err != nil {
		t.Fatalf("status %d with a body that is not a JSON object (%v): %q", res.Status, err, res.Body)
	}
	return m
}

// templateMarkup is every element and attribute name the server's
// templates use: a page showing any other came from input that reached
// the HTML unescaped.
var templateMarkup = sync.OnceValues(func() (tags, attrs map[string]bool) {
	tags, attrs = map[string]bool{}, map[string]bool{}
	tagRE := regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>`)
	attrRE := regexp.MustCompile(`(?:^|\s|\}\})([a-zA-Z][a-zA-Z-]*)`)
	fs.WalkDir(templateFS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := fs.ReadFile(templateFS, path)
		// Template actions are not markup.
		src = regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAll(src, []byte(" "))
		src = regexp.MustCompile(`"[^"]*"`).ReplaceAll(src, []byte(`""`))
		for _, m := range tagRE.FindAllSubmatch(src, -1) {
			tags[strings.ToLower(string(m[1]))] = true
			for _, a := range attrRE.FindAllSubmatch(m[2], -1) {
				attrs[strings.ToLower(string(a[1]))] = true
			}
		}
		return nil
	})
	return tags, attrs
})

// checkInertHTML checks an HTML page the server rendered: its content
// type, and that whatever the request carried stayed text: only the
// templates' elements and attributes, no event handler, scripts only with
// the page's CSP nonce, no javascript: URL. It returns the action of the
// page's auto-submitted form (form_post), if it has one.
func checkInertHTML(t *testing.T, res *response) (autoSubmit string) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("status %d with content type %q: %q", res.Status, ct, res.Body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("page without the CSP: %q", csp)
	}
	tags, attrs := templateMarkup()
	z := html.NewTokenizer(bytes.NewReader([]byte(res.Body)))
	var inScript bool
	var formAction string
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if inScript {
				t.Fatalf("unterminated script: %q", res.Body)
			}
			return autoSubmit
		case html.TextToken:
			if inScript {
				if js := strings.TrimSpace(string(z.Text())); js != "document.forms[0].submit();" {
					t.Fatalf("unexpected script %q", js)
				}
				autoSubmit = formAction
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "script" {
				inScript = false
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, more := z.TagName()
			if !tags[string(name)] {
				t.Fatalf("element <%s> is not in any template: %q", name, res.Body)
			}
			var nonce string
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				key, val := string(k), strings.ToLower(strings.TrimSpace(string(v)))
				if !attrs[key] || strings.HasPrefix(key, "on") {
					t.Fatalf("attribute %s of <%s> is not in any template: %q", key, name, res.Body)
				}
				if (key == "href" || key == "src" || key == "action") &&
					(strings.HasPrefix(val, "javascript:") || strings.HasPrefix(val, "vbscript:")) {
					t.Fatalf("%s=%q on <%s>", key, v, name)
				}
				if key == "nonce" {
					nonce = string(v)
				}
				if string(name) == "form" && key == "action" {
					formAction = string(v)
				}
			}
			if string(name) == "script" {
				if nonce == "" || !strings.Contains(csp, "'nonce-"+nonce+"'") {
					t.Fatalf("script without the page's nonce: %q", res.Body)
				}
				inScript = true
			}
		}
	}
}

// locationBase is a Location without its query and fragment.
func locationBase(loc string) string {
	base, _, _ := strings.Cut(loc, "#")
	base, _, _ = strings.Cut(base, "?")
	return base
}

// idTokenAlgs are the algorithms the server may sign with.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}

// verifiedIDToken checks tok as a relying party would, with go-jose and
// the published key set, independently of keys.Verify: one signature by
// the key its kid names, typ JWT, this issuer. It returns the subject and
// audience, or ok false.
func verifiedIDToken(set jose.JSONWebKeySet, tok string) (sub string, aud []string, ok bool) {
	parsed, err := jwt.ParseSigned(tok, idTokenAlgs)
	if err != nil || len(parsed.Headers) != 1 {
		return "", nil, false
	}
	h := parsed.Headers[0]
	keys := set.Key(h.KeyID)
	if h.KeyID == "" || len(keys) != 1 || keys[0].Algorithm != h.Algorithm {
		return "", nil, false
	}
	var claims struct {
		Issuer   string       `json:"iss"`
		Subject  string       `json:"sub"`
		Audience jwt.Audience `json:"aud"`
	}
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		return "", nil, false
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "JWT" || claims.Issuer != testIssuer {
		return "", nil, false
	}
	return claims.Subject, claims.Audience, true
}

// browserCookies is the Cookie header b sends to the issuer.
func browserCookies(b *browser) string {
	u, _ := url.Parse(testIssuer)
	var parts []string
	for _, c := range b.jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// csrfCookie is the CSRF cookie alone of b's Cookie header.
func csrfCookie(b *browser) string {
	u, _ := url.Parse(testIssuer)
	for _, c := range b.jar.Cookies(u) {
		if strings.Contains(c.Name, "portcullis_csrf") {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// signedInSession returns the SSO session b's cookies name, so a target
// whose inputs may end it can put it back before the next input.
func (e *testEnv) signedInSession(tb testing.TB, b *browser) *store.Session {
	tb.Helper()
	r := httptest.NewRequest(http.MethodGet, testIssuer+"/", nil)
	r.Header.Set("Cookie", browserCookies(b))
	sess := e.srv.currentSession(r)
	if sess == nil {
		tb.Fatal("the browser is not signed in")
	}
	return sess
}

// keepSession puts sess back in the store when an input ended it.
func (e *testEnv) keepSession(t *testing.T, sess *store.Session) {
	if _, err := e.store.GetSession(context.Background(), sess.ID); err == nil {
		return
	}
	if err := e.store.PutSession(context.Background(), sess); err != nil {
		t.Fatal(err)
	}
}

// withValues is v with the pairs kv set, as a new url.Values.
func withValues(v url.Values, kv ...string) url.Values {
	c := url.Values{}
	for k, x := range v {
		c[k] = slices.Clone(x)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Set(kv[i], kv[i+1])
	}
	return c
}
