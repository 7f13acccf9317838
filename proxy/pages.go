package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"net/http"

	"go.uber.org/zap"
)

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style nonce="{{.Nonce}}">
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1f2328;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;max-width:420px;width:calc(100% - 2rem);padding:2rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 .75rem}p{line-height:1.5}a.button{display:inline-block;margin-top:1rem;padding:.6rem 1.1rem;border-radius:8px;background:#2b59c3;color:#fff;text-decoration:none;font-weight:600}
a.button:focus-visible{outline:3px solid #1a3d8f;outline-offset:2px}.muted{color:#59636e;font-size:.875rem}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}main{background:#161b22}.muted{color:#9198a1}}
</style></head>
<body><main role="main"><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Detail}}<p class="muted">{{.Detail}}</p>{{end}}
{{if .LinkURL}}<a class="button" href="{{.LinkURL}}">{{.LinkText}}</a>{{end}}
</main></body></html>`))

type pageData struct {
	Title, Message, Detail, LinkURL, LinkText, Nonce string
}

func (g *Gateway) page(w http.ResponseWriter, status int, d pageData) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	d.Nonce = base64.StdEncoding.EncodeToString(nonce)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		g.log.Error("rendering page", zap.Error(err))
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+d.Nonce+"'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail ends a login that went wrong with a clear page and a link to sign in
// again, logs why, and counts it. It never loops: the link is a plain
// navigation the user chooses.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, status int, reason, message string, err error, returnTo ...string) {
	g.metrics.LoginFailed(reason)
	fields := []zap.Field{zap.String("reason", reason), zap.Int("status", status)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	g.log.Info("sign-in failed", fields...)
	again := "/"
	if len(returnTo) > 0 {
		again = safeReturn(returnTo[0])
	}
	if isAPIRequest(r) && r.URL.Path != g.cfg.RedirectPath {
		http.Error(w, message, status)
		return
	}
	g.page(w, status, pageData{Title: "Sign-in failed", Message: message, Detail: "Reason: " + reason,
		LinkURL: again, LinkText: "Sign in again"})
}

// forbidden is the answer for a signed-in user the policy refuses: a 403
// page with a way to sign out, never a login loop.
func (g *Gateway) forbidden(w http.ResponseWriter, r *http.Request, id *Identity) {
	if isAPIRequest(r) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	who := id.ClaimString("email")
	if who == "" {
		who = id.Subject
	}
	g.page(w, http.StatusForbidden, pageData{Title: "Access denied",
		Message: "You are signed in as " + who + ", but this account may not use this site.",
		LinkURL: g.cfg.LogoutPath, LinkText: "Sign in as someone else"})
}

// unavailable answers new logins while the provider cannot be reached.
func (g *Gateway) unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	if isAPIRequest(r) {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return
	}
	g.page(w, http.StatusServiceUnavailable, pageData{Title: "Sign-in is unavailable",
		Message: "The identity provider cannot be reached right now. Please try again in a moment.",
		LinkURL: safeReturn(returnTo(r)), LinkText: "Try again"})
}
