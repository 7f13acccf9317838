package flows

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/session"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

func parseTemplates() (*template.Template, error) {
	return template.ParseFS(templateFS, "templates/*.html")
}

func assetHandler() http.Handler {
	sub, _ := fs.Sub(assetFS, "assets")
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// brandView is the brand as the templates see it.
type brandView struct {
	Name    string
	Color   template.CSS
	LogoURL string
}

// page holds the fields every template uses.
type page struct {
	Title     string
	Brand     brandView
	AssetBase string
	CSPNonce  string
}

type loginPage struct {
	page
	ClientName, Error, Action, CSRFToken, AuthRequest, Username string
}

type scopeView struct{ Name, Description string }

type consentPage struct {
	page
	ClientName, UserName, APIName, Action, CSRFToken, AuthRequest string
	Scopes                                                        []scopeView
}

type errorPage struct {
	page
	Message, ErrorCode string
}

type hiddenField struct{ Name, Value string }

type logoutPage struct {
	page
	Action, CSRFToken string
	Hidden            []hiddenField
}

type formPostPage struct {
	RedirectURI template.URL
	Params      []hiddenField
	CSPNonce    string
}

func (s *Server) newPage(title, nonce string) page {
	return page{
		Title:     title,
		Brand:     brandView{Name: s.cfg.Brand.Name, Color: template.CSS(s.cfg.Brand.Color), LogoURL: s.cfg.Brand.LogoURL},
		AssetBase: s.pathPrefix,
		CSPNonce:  nonce,
	}
}

func newNonce() string { return base64.StdEncoding.EncodeToString(randomBytes(16)) }

// render writes an HTML page with a strict Content-Security-Policy: only our
// stylesheet and nonce'd inline style/script, no framing.
func (s *Server) render(w http.ResponseWriter, status int, name, nonce string, data any) {
	var buf bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("rendering page", zap.String("template", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+
		"'; img-src 'self' https: data:; form-action *; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError shows an error page: used when there is no redirect_uri that
// can safely receive the error (RFC 6749 §4.1.2.1).
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	oe := asOAuth(err)
	s.logError(r, oe)
	nonce := newNonce()
	title := "Something went wrong"
	if oe.Status < 500 {
		title = "This request cannot be completed"
	}
	s.render(w, oe.Status, "error.html", nonce, errorPage{page: s.newPage(title, nonce), Message: oe.Description, ErrorCode: oe.Code})
}

// csrfToken returns the browser's CSRF token, setting the cookie when the
// browser has none. Forms echo it in csrf_token (double submit); the cookie
// is HttpOnly and SameSite, so another site can neither read nor send it.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if v, err := session.ReadChunked(r, s.csrf); err == nil && len(v) == 43 {
		return v
	}
	tok := randomToken()
	session.WriteChunked(w, r, s.csrf, tok)
	return tok
}

// checkCSRF verifies the form's csrf_token against the cookie.
func (s *Server) checkCSRF(r *http.Request) bool {
	cookie, err := session.ReadChunked(r, s.csrf)
	form := r.PostForm.Get("csrf_token")
	return err == nil && cookie != "" && subtle.ConstantTimeCompare([]byte(cookie), []byte(form)) == 1
}
