package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// logout ends the session and, when the provider supports RP-initiated
// logout, ends it there too (id_token_hint, post_logout_redirect_uri).
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	sess, _ := g.cfg.Sessions.Load(r)
	if err := g.cfg.Sessions.Clear(w, r, sess); err != nil {
		g.log.Error("clearing session", zap.Error(err))
	}
	post := g.cfg.PostLogoutRedirect
	if strings.HasPrefix(post, "/") {
		post = requestOrigin(r) + safeReturn(post)
	}
	w.Header().Set("Cache-Control", "no-store")
	p := g.provider()
	if sess != nil {
		g.log.Info("signed out", zap.String("sub", sess.Subject))
	}
	if p != nil && p.meta.EndSession != "" && sess != nil && sess.IDToken != "" {
		q := url.Values{
			"id_token_hint":            {sess.IDToken},
			"post_logout_redirect_uri": {post},
			"client_id":                {g.cfg.ClientID},
		}
		sep := "?"
		if strings.Contains(p.meta.EndSession, "?") {
			sep = "&"
		}
		http.Redirect(w, r, p.meta.EndSession+sep+q.Encode(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, post, http.StatusSeeOther)
}
