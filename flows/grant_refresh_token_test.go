package flows

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/portcullis-gw/portcullis/store"
)

// TestRefreshReChecksCurrentPermissions tries to keep what an operator
// took away: after the client's or the API's scopes were narrowed, the
// user disabled or the client deleted, a refresh token issued before must
// not mint what is no longer allowed.
func TestRefreshReChecksCurrentPermissions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// webapp is the stored record of the webapp client.
	webapp := func(t *testing.T, env *testEnv) *store.Client {
		c, err := env.store.GetClient(ctx, webappID)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		// change is what the operator does after the tokens were issued.
		change func(t *testing.T, env *testEnv)
		// wantScope is the scope of the refreshed access token; "" means
		// the refresh is refused with wantErr.
		wantScope string
		wantErr   string
		status    int
	}{
		{"nothing changed", func(*testing.T, *testEnv) {}, "openid offline_access read:items", "", 0},
		{"client scopes narrowed", func(t *testing.T, env *testEnv) {
			c := webapp(t, env)
			c.Scopes = []string{"openid", "offline_access", "write:items"}
			if err := env.store.PutClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}, "openid offline_access", "", 0},
		{"API scope removed", func(t *testing.T, env *testEnv) {
			api, err := env.store.GetAPI(ctx, apiID1)
			if err != nil {
				t.Fatal(err)
			}
			api.Scopes = []string{"write:items"}
			if err := env.store.PutAPI(ctx, api); err != nil {
				t.Fatal(err)
			}
		}, "openid offline_access", "", 0},
		{"every scope taken away", func(t *testing.T, env *testEnv) {
			c := webapp(t, env)
			c.Scopes = []string{"email"}
			if err := env.store.PutClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}, "", "invalid_grant", http.StatusBadRequest},
		{"API deleted", func(t *testing.T, env *testEnv) {
			if err := env.store.DeleteAPI(ctx, apiID1); err != nil {
				t.Fatal(err)
			}
		}, "", "invalid_grant", http.StatusBadRequest},
		{"user disabled", func(t *testing.T, env *testEnv) {
			u, err := env.store.GetUser(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			u.Disabled = true
			if err := env.store.PutUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}, "", "invalid_grant", http.StatusBadRequest},
		{"client deleted and recreated under its id", func(t *testing.T, env *testEnv) {
			c := webapp(t, env)
			if err := env.store.DeleteClient(ctx, webappID); err != nil {
				t.Fatal(err)
			}
			if err := env.store.PutClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}, "", "invalid_grant", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestServer(t)
			tr, _ := env.webappTokens(env.newBrowser(), "openid offline_access read:items")
			tc.change(t, env)
			res := env.refresh(webappBasic, tr.RefreshToken)
			if tc.wantErr != "" {
				wantOAuthError(t, res, tc.status, tc.wantErr)
				return
			}
			if res.Status != http.StatusOK {
				t.Fatalf("refresh: %d %s", res.Status, res.Body)
			}
			got := res.JSON(t)
			if got["scope"] != tc.wantScope {
				t.Fatalf("refreshed scope %q, want %q", got["scope"], tc.wantScope)
			}
			_, claims := env.verifyJWT(got["access_token"].(string))
			if claims["scope"] != tc.wantScope {
				t.Errorf("access token scope %q, want %q", claims["scope"], tc.wantScope)
			}
			// The grant's next refresh token carries only what is still
			// allowed, and asking for a dropped scope by name is refused.
			next := got["refresh_token"].(string)
			if tc.wantScope != "openid offline_access read:items" {
				ask := url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {next}, "scope": {"read:items"}}
				wantOAuthError(t, env.token(webappBasic, ask), http.StatusBadRequest, "invalid_scope")
				if info := env.introspect(next); info["scope"] != tc.wantScope {
					t.Errorf("the next refresh token carries %q, want %q", info["scope"], tc.wantScope)
				}
			}
		})
	}
}
