package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/portcullis-gw/portcullis/session"
)

// recentRefreshes remembers, for a short while, what each refresh token was
// exchanged for: requests of the same session that still carry the old
// cookie (sent before the new one arrived) reuse the result instead of
// presenting a rotated refresh token, which a provider with reuse
// detection would answer by revoking the whole session.
type recentRefreshes struct {
	mu      sync.Mutex
	entries map[[32]byte]recentRefresh
}

type recentRefresh struct {
	sess    *session.Data
	expires time.Time
}

const (
	recentRefreshTTL = 2 * time.Minute
	maxRecent        = 10_000
	// refreshTimeout bounds a refresh now that it outlives its request.
	refreshTimeout = 30 * time.Second
)

func (rr *recentRefreshes) get(key [32]byte, now time.Time) *session.Data {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	e, ok := rr.entries[key]
	if !ok || now.After(e.expires) {
		return nil
	}
	return e.sess
}

func (rr *recentRefreshes) put(key [32]byte, sess *session.Data, now time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.entries == nil {
		rr.entries = map[[32]byte]recentRefresh{}
	}
	if len(rr.entries) >= maxRecent {
		for k, e := range rr.entries {
			if now.After(e.expires) {
				delete(rr.entries, k)
			}
		}
		if len(rr.entries) >= maxRecent {
			return // full of live entries: late requests will refresh again
		}
	}
	rr.entries[key] = recentRefresh{sess: sess, expires: now.Add(recentRefreshTTL)}
}

var errProviderDown = errors.New("the identity provider is not available")

// reusableRefresh returns what sess's refresh token was recently exchanged
// for, when that result may stand in for a new refresh: always when the
// provider rotated the refresh token (the old one is spent; presenting it
// again would look like token theft), otherwise only while the cached
// access token is itself outside the refresh margin. A provider that keeps
// its refresh tokens would else have the same, soon expired, access token
// handed out again and again.
func (g *Gateway) reusableRefresh(key [32]byte, sess *session.Data) *session.Data {
	now := g.now()
	done := g.recent.get(key, now)
	if done == nil {
		return nil
	}
	if done.RefreshToken != sess.RefreshToken || now.Before(done.TokenExpiry.Add(-g.cfg.RefreshBefore)) {
		return done
	}
	return nil
}

// maybeRefresh renews the access token shortly before it expires: one
// refresh per session at a time (singleflight on the refresh token), the
// result shared with concurrent and late requests. A failed refresh ends
// the session cleanly: the browser signs in again, an API client gets 401.
func (g *Gateway) maybeRefresh(w http.ResponseWriter, r *http.Request, sess *session.Data) (*session.Data, bool) {
	now := g.now()
	if sess.RefreshToken == "" || sess.TokenExpiry.IsZero() || now.Before(sess.TokenExpiry.Add(-g.cfg.RefreshBefore)) {
		return sess, true
	}
	key := sha256.Sum256([]byte(sess.RefreshToken))
	next := g.reusableRefresh(key, sess)
	if next == nil {
		v, err, _ := g.refresh.Do(string(key[:]), func() (any, error) {
			if done := g.reusableRefresh(key, sess); done != nil {
				return done, nil
			}
			p := g.provider()
			if p == nil {
				return nil, errProviderDown
			}
			// The refresh is shared by every request of the session and the
			// provider may rotate the refresh token: it must not be cut
			// short because the request that started it went away.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
			defer cancel()
			ctx = g.clientContext(ctx)
			tok, err := p.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: sess.RefreshToken}).Token()
			if err != nil {
				return nil, err
			}
			fresh, err := g.sessionFromTokens(ctx, p, tok, "", sess)
			if err != nil {
				return nil, err
			}
			g.recent.put(key, fresh, g.now())
			return fresh, nil
		})
		if err != nil {
			g.metrics.Refreshed(false)
			g.log.Info("token refresh failed; ending the session", zap.String("sub", sess.Subject), zap.Error(err))
			g.cfg.Sessions.Clear(w, r, sess)
			g.unauthenticated(w, r)
			return nil, false
		}
		next = v.(*session.Data)
		g.metrics.Refreshed(true)
	}
	fresh := *next
	fresh.LastSeen = now
	if err := g.cfg.Sessions.Save(w, r, &fresh); err != nil {
		g.log.Error("saving refreshed session", zap.Error(err))
	}
	return &fresh, true
}
