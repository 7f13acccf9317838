package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

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
	p := g.waitProvider(r.Context())
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

// seenTokens remembers logout token ids (and used login states) until they
// expire, so a captured one cannot be replayed (bounded).
//
// When full of live entries it forgets arbitrary ones rather than refuse
// new ones: refusing would let anyone who can start logins (11 a second
// fill it within loginTTL) stop everyone signing in. Forgetting weakens
// nothing that holds without it: a replayed callback whose state was
// forgotten carries an authorization code the provider already redeemed,
// and codes are single use (RFC 6749 §4.1.2); logout tokens come signed
// by the provider alone, and a replayed one ends sessions already ended.
type seenTokens struct {
	mu   sync.Mutex
	seen map[string]time.Time
	// swept is when a full map was last swept of expired entries, so that
	// a flood does not pay for a sweep of every entry on every add.
	swept time.Time
}

const maxSeenTokens = 10_000

// add records jti and reports false when it was already seen.
func (s *seenTokens) add(jti string, exp, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	if until, ok := s.seen[jti]; ok && now.Before(until) {
		return false
	}
	if len(s.seen) >= maxSeenTokens {
		if now.Sub(s.swept) >= time.Second {
			for k, until := range s.seen {
				if !now.Before(until) {
					delete(s.seen, k)
				}
			}
			s.swept = now
		}
		// Still full of live entries (a flood): forget some rather than
		// grow without bound.
		for k := range s.seen {
			if len(s.seen) < maxSeenTokens {
				break
			}
			delete(s.seen, k)
		}
	}
	if exp.IsZero() || exp.Sub(now) > time.Hour {
		exp = now.Add(time.Hour)
	}
	s.seen[jti] = exp
	return true
}

// backchannelLogout is the OIDC Back-Channel Logout 1.0 receiver: the
// provider POSTs a signed logout_token; its sessions (by sub and/or sid)
// end at once. Answers per §2.8: 200 on success, 400 with a JSON error
// otherwise.
func (g *Gateway) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("logout_token") == "" {
		fail(http.StatusBadRequest, "invalid_request", "logout_token is required")
		return
	}
	p := g.waitProvider(r.Context())
	if p == nil {
		fail(http.StatusBadRequest, "temporarily_unavailable", "the provider's keys are not loaded yet")
		return
	}
	lt, err := p.verifier.VerifyLogout(g.clientContext(r.Context()), r.PostForm.Get("logout_token"))
	if err != nil {
		g.log.Info("back-channel logout token refused", zap.Error(err))
		fail(http.StatusBadRequest, "invalid_request", "the logout token is not valid")
		return
	}
	if !g.seenJTI.add(lt.TokenID, lt.Expiry, g.now()) {
		fail(http.StatusBadRequest, "invalid_request", "the logout token was already used")
		return
	}
	if g.cfg.EndSessions == nil {
		fail(http.StatusNotImplemented, "invalid_request", "back-channel logout needs server-side sessions (session_store server)")
		return
	}
	n, err := g.cfg.EndSessions(r.Context(), lt.Subject, lt.SessionID)
	if err != nil {
		g.log.Error("ending sessions for back-channel logout", zap.Error(err))
		fail(http.StatusInternalServerError, "server_error", "the sessions could not be ended")
		return
	}
	g.log.Info("back-channel logout", zap.String("sub", lt.Subject), zap.String("sid", lt.SessionID), zap.Int("sessions", n))
	w.WriteHeader(http.StatusOK)
}
