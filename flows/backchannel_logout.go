package flows

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// sidOf is the session identifier clients see (the sid claim): derived
// from the SSO session id, which itself never leaves the encrypted cookie.
func sidOf(sessionID string) string {
	sum := sha256.Sum256([]byte("sid:" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// backchannelEvent is the events member of a logout token (OIDC
// Back-Channel Logout 1.0 §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// backchannelClient sends logout tokens; short timeout, loopback allowed.
var backchannelClient = &http.Client{Timeout: 5 * time.Second}

// notifyBackchannelLogout tells every client that got tokens in the ended
// session, and registered a backchannel_logout_uri, that the session is
// over. It runs in the background: a slow client never delays the user.
func (s *Server) notifyBackchannelLogout(sess *store.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sid := sidOf(sess.ID)
	grants, err := s.store.ListGrants(ctx, sess.Subject)
	if err != nil {
		s.log.Error("listing grants for back-channel logout", zap.Error(err))
		return
	}
	notified := map[string]bool{}
	for _, g := range grants {
		if g.SessionID != sid || notified[g.ClientID] {
			continue
		}
		notified[g.ClientID] = true
		client, err := s.store.GetClient(ctx, g.ClientID)
		if err != nil || client.BackchannelLogoutURI == "" {
			continue
		}
		s.sendLogoutToken(ctx, client, sess.Subject, sid)
	}
}

func (s *Server) sendLogoutToken(ctx context.Context, client *store.Client, subject, sid string) {
	now := s.now()
	token, err := s.keys.Sign(map[string]any{
		"iss": s.issuer, "aud": client.ID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomToken()[:22], "sub": subject, "sid": sid,
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}, "logout+jwt")
	if err != nil {
		s.log.Error("signing logout token", zap.Error(err))
		return
	}
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, client.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		s.log.Error("back-channel logout request", zap.String("client", client.ID), zap.Error(err))
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := backchannelClient.Do(req)
	if err != nil {
		s.log.Warn("back-channel logout not delivered", zap.String("client", client.ID), zap.Error(err))
		return
	}
	resp.Body.Close()
	s.log.Info("back-channel logout delivered", zap.String("client", client.ID), zap.Int("status", resp.StatusCode))
}
