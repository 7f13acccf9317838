package flows

import (
	"context"
	"net/url"
	"testing"
	"time"
)

// TestInProcessIntrospectionAnswersForAccessTokensOnly is the API guard's
// in-process path: live access tokens (JWT and opaque) are active, a
// refresh token never is (an API must not take one for an access token),
// nor a revoked or expired access token.
func TestInProcessIntrospectionAnswersForAccessTokensOnly(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid offline_access read:opaque")
	p.Set("audience", opaqueAPI)
	code := b.obtainCode(p, "alice", alicePassword)
	opaque := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	jwt, _ := env.webappTokens(env.newBrowser(), "openid offline_access")
	ctx := context.Background()

	active := func(tok string) map[string]any {
		t.Helper()
		info, err := env.srv.IntrospectAccessToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	for name, tok := range map[string]string{"opaque": opaque.AccessToken, "jwt": jwt.AccessToken} {
		info := active(tok)
		if info["active"] != true || info["sub"] != "alice" || info["client_id"] != webappID || info["iss"] != testIssuer {
			t.Errorf("%s access token: %v", name, info)
		}
	}
	if info := active(opaque.AccessToken); info["aud"] != opaqueAPI {
		t.Errorf("opaque token aud %v, want %s", info["aud"], opaqueAPI)
	}
	for name, tok := range map[string]string{
		"refresh token": opaque.RefreshToken, "garbage": "not-a-token", "empty": "",
		"forged jwt": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
	} {
		if info := active(tok); info["active"] != false {
			t.Errorf("%s introspected active: %v", name, info)
		}
	}
	if res := env.backChannel(PathRevoke, webappBasic, url.Values{"token": {jwt.AccessToken}}); res.Status != 200 {
		t.Fatalf("revoke: %d %s", res.Status, res.Body)
	}
	if info := active(jwt.AccessToken); info["active"] != false {
		t.Errorf("revoked JWT still active in process: %v", info)
	}
	env.clock.Advance(2 * time.Hour)
	if info := active(opaque.AccessToken); info["active"] != false {
		t.Errorf("expired opaque token still active in process: %v", info)
	}
}
