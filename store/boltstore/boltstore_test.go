package boltstore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
	"github.com/portcullis-gw/portcullis/store/boltstore"
	"github.com/portcullis-gw/portcullis/store/storetest"
)

// TestContract runs the backend-independent store contract against a fresh
// bbolt file per subtest.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func(func() time.Time)) {
		s := open(t, filepath.Join(t.TempDir(), "portcullis.db"))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, s.SetClock
	})
}

func open(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

// TestOpenCreatesPrivateFileAndDirectory checks Open makes missing parent
// directories and creates the file 0600 (it holds keys and password hashes).
func TestOpenCreatesPrivateFileAndDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "portcullis.db")
	s := open(t, path)
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("file mode %v, want no group or other access", perm)
	}
}

// TestPersistsAcrossReopen writes every kind of record, closes the file,
// opens it again and reads them all back, including the used state of codes
// and refresh tokens and the grant-to-token index RevokeGrant relies on.
func TestPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2031, time.March, 14, 9, 26, 53, 0, time.UTC)
	clock := func() time.Time { return t0 }
	path := filepath.Join(t.TempDir(), "portcullis.db")
	day := t0.Add(24 * time.Hour)

	client := &store.Client{ID: "app", Name: "App", TokenEndpointAuthMethod: "none",
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code"}, CreatedAt: t0}
	user := &store.User{ID: "alice", Username: "alice", PasswordHash: "$argon2id$x", Email: "alice@example.org",
		Groups: []string{"staff"}, Claims: map[string]any{"dept": "R&D"}, CreatedAt: t0}
	api := &store.API{Identifier: "https://api.example", Scopes: []string{"read"}, TokenFormat: "opaque", CreatedAt: t0}
	grant := &store.Grant{ID: "grant-1", ClientID: "app", Subject: "alice", Scopes: []string{"openid"},
		AuthTime: t0, CreatedAt: t0, ExpiresAt: day}
	rt1 := &store.RefreshToken{Digest: "rt-1", GrantID: "grant-1", ClientID: "app", Subject: "alice", CreatedAt: t0, ExpiresAt: day}
	rt2 := &store.RefreshToken{Digest: "rt-2", GrantID: "grant-1", ClientID: "app", Subject: "alice", CreatedAt: t0, ExpiresAt: day}
	at1 := &store.AccessToken{Digest: "at-1", GrantID: "grant-1", ClientID: "app", Subject: "alice", JTI: "j1", IssuedAt: t0, ExpiresAt: day}
	atCC := &store.AccessToken{Digest: "at-cc", ClientID: "svc", Subject: "svc", JTI: "j2", IssuedAt: t0, ExpiresAt: day}
	code := &store.AuthCode{Digest: "code-1", ClientID: "app", RedirectURI: "https://app.example/cb", GrantID: "grant-1",
		Subject: "alice", AuthTime: t0, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	consent := &store.Consent{Subject: "alice", ClientID: "app", Scopes: []string{"openid"}, CreatedAt: t0}
	session := &store.Session{ID: "sess-1", Subject: "alice", AuthTime: t0, AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: day}
	device := &store.DeviceCode{Digest: "dc-1", UserCode: "BCDFGHJK", ClientID: "app", Scopes: []string{"openid"},
		Interval: 5, Status: store.DevicePending, GrantID: "grant-2", CreatedAt: t0,
		CodeExpiresAt: t0.Add(10 * time.Minute), ExpiresAt: t0.Add(15 * time.Minute)}
	key := &store.Key{ID: "kid-1", Alg: "ES256", PrivateJWK: json.RawMessage(`{"kty":"EC","d":"x"}`),
		CreatedAt: t0, ActiveUntil: day, ExpiresAt: day.Add(24 * time.Hour)}

	s := open(t, path)
	s.SetClock(clock)
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must(s.PutClient(ctx, client), "PutClient")
	must(s.PutUser(ctx, user), "PutUser")
	must(s.PutAPI(ctx, api), "PutAPI")
	must(s.IssueGrant(ctx, grant, rt1, at1), "IssueGrant")
	_, err := s.RotateRefreshToken(ctx, "rt-1", rt2, nil)
	must(err, "RotateRefreshToken")
	must(s.PutAccessToken(ctx, atCC), "PutAccessToken")
	must(s.PutCode(ctx, code), "PutCode")
	_, err = s.TakeCode(ctx, "code-1")
	must(err, "TakeCode")
	must(s.RevokeJTI(ctx, "jwt-1", day), "RevokeJTI")
	must(s.PutConsent(ctx, consent), "PutConsent")
	must(s.PutSession(ctx, session), "PutSession")
	must(s.PutKey(ctx, key), "PutKey")
	must(s.PutDeviceCode(ctx, device), "PutDeviceCode")
	secret, err := s.GetOrCreateSecret(ctx, "cookie", func() ([]byte, error) { return []byte("0123456789abcdef"), nil })
	must(err, "GetOrCreateSecret")
	must(s.Close(), "Close")

	s = open(t, path)
	defer s.Close()
	s.SetClock(clock)

	check := func(name string, got any, err error, want any) {
		t.Helper()
		if err != nil {
			t.Errorf("%s after reopen: %v", name, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after reopen:\n got  %+v\n want %+v", name, got, want)
		}
	}
	gotClient, err := s.GetClient(ctx, "app")
	check("client", gotClient, err, client)
	gotUser, err := s.GetUser(ctx, "alice")
	check("user", gotUser, err, user)
	gotAPI, err := s.GetAPI(ctx, "https://api.example")
	check("API", gotAPI, err, api)
	gotGrant, err := s.GetGrant(ctx, "grant-1")
	check("grant", gotGrant, err, grant)
	gotRT, err := s.GetRefreshToken(ctx, "rt-2")
	check("refresh token", gotRT, err, rt2)
	gotAT, err := s.GetAccessToken(ctx, "at-1")
	check("access token", gotAT, err, at1)
	gotCC, err := s.GetAccessToken(ctx, "at-cc")
	check("client credentials token", gotCC, err, atCC)
	gotConsent, err := s.GetConsent(ctx, "alice", "app")
	check("consent", gotConsent, err, consent)
	gotSession, err := s.GetSession(ctx, "sess-1")
	check("session", gotSession, err, session)
	keys, err := s.ListKeys(ctx)
	check("keys", keys, err, []*store.Key{key})
	gotDevice, err := s.GetDeviceCode(ctx, "dc-1")
	check("device code", gotDevice, err, device)
	// The user-code index survived too.
	gotDevice, err = s.GetDeviceCodeByUserCode(ctx, "BCDFGHJK")
	check("device code by user code", gotDevice, err, device)

	if _, err := s.GetRefreshToken(ctx, "rt-1"); !errors.Is(err, store.ErrAlreadyUsed) {
		t.Errorf("rotated refresh token after reopen: %v, want ErrAlreadyUsed", err)
	}
	if _, err := s.TakeCode(ctx, "code-1"); !errors.Is(err, store.ErrAlreadyUsed) {
		t.Errorf("taken code after reopen: %v, want ErrAlreadyUsed", err)
	}
	if revoked, err := s.IsJTIRevoked(ctx, "jwt-1"); err != nil || !revoked {
		t.Errorf("IsJTIRevoked after reopen = %v, %v; want true", revoked, err)
	}
	gotSecret, err := s.GetOrCreateSecret(ctx, "cookie", func() ([]byte, error) {
		t.Error("create called for a secret stored before reopen")
		return []byte("other"), nil
	})
	if err != nil || !bytes.Equal(gotSecret, secret) {
		t.Errorf("secret after reopen = %q, %v; want %q", gotSecret, err, secret)
	}

	// The grant-to-token index survived too: revoking reaches every token.
	must(s.RevokeGrant(ctx, "grant-1"), "RevokeGrant after reopen")
	for _, d := range []string{"rt-1", "rt-2"} {
		if _, err := s.GetRefreshToken(ctx, d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refresh token %s after revoking its reopened grant: %v, want ErrNotFound", d, err)
		}
	}
	if _, err := s.GetAccessToken(ctx, "at-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("access token after revoking its reopened grant: %v, want ErrNotFound", err)
	}
	if _, err := s.GetAccessToken(ctx, "at-cc"); err != nil {
		t.Errorf("client credentials token after an unrelated revocation: %v", err)
	}
}
