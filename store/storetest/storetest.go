// Package storetest holds the backend-independent contract tests of
// store.Store. Every backend's own test calls Run with a function that opens
// a fresh, empty store and hands over a way to inject the clock the store
// uses for expiry checks:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (store.Store, func(func() time.Time)) {
//			s := openFreshBackend(t) // closed by a t.Cleanup
//			return s, s.SetClock
//		})
//	}
//
// The suite only uses the store.Store interface, compares times with
// time.Time.Equal, treats nil and empty slices and maps alike and uses
// whole-second timestamps, so a backend that normalises those (SQL) passes as
// well as the embedded one.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// t0 is the instant every injected clock starts at. It is far enough from
// the Unix epoch and from the year 2262 that any timestamp encoding works.
var t0 = time.Date(2031, time.March, 14, 9, 26, 53, 0, time.UTC)

// racers is how many goroutines the concurrency tests start at once.
const racers = 50

// Run runs the store.Store contract against the backend that open creates.
//
// open is called once per subtest. It must return a new, empty store, close
// it when the test ends (t.Cleanup) and return setNow, which replaces the
// clock the store reads for every expiry check made on read (Sweep takes its
// own time). Run calls setNow once, right after open, with a clock it then
// moves forward and back itself; the clock function is safe for concurrent
// use.
func Run(t *testing.T, open func(t *testing.T) (s store.Store, setNow func(func() time.Time))) {
	o := opener(open)
	groups := []struct {
		name string
		run  func(t *testing.T, o opener)
	}{
		{"Clients", clientCRUD.test},
		{"Users", userCRUD.test},
		{"APIs", apiCRUD.test},
		{"Expiry", testExpiry},
		{"Sweep", testSweep},
		{"AuthCodes", testAuthCodes},
		{"DeviceCodes", testDeviceCodes},
		{"PushedRequests", testPushedRequests},
		{"CIBARequests", testCIBARequests},
		{"CIBANotifications", testCIBANotifications},
		{"Grants", testGrants},
		{"RefreshTokens", testRefreshTokens},
		{"RevokeGrant", testRevokeGrant},
		{"RevokeGrantsOfSubject", testRevokeGrantsOfSubject},
		{"DeleteClientRevokesItsGrants", testDeleteClientRevokesItsGrants},
		{"AccessTokens", testAccessTokens},
		{"RevokedJTIs", testRevokedJTIs},
		{"Consents", testConsents},
		{"Sessions", testSessions},
		{"Keys", testKeys},
		{"Secrets", testSecrets},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, o) })
	}
}

// --- harness ---

// clock is the injected time source: read by the store, moved by the tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// fixture is one fresh store with its clock.
type fixture struct {
	ctx context.Context
	s   store.Store
	clk *clock
}

type opener func(t *testing.T) (store.Store, func(func() time.Time))

// fresh opens a new store whose clock stands at t0.
func (o opener) fresh(t *testing.T) *fixture {
	t.Helper()
	s, setNow := o(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	if setNow == nil {
		t.Fatal("open returned a nil setNow")
	}
	clk := &clock{now: t0}
	setNow(clk.Now)
	return &fixture{ctx: t.Context(), s: s, clk: clk}
}

// subtest is one named behaviour run against a fresh store.
type subtest struct {
	name string
	fn   func(t *testing.T, f *fixture)
}

func runAll(t *testing.T, o opener, tests []subtest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, o.fresh(t)) })
	}
}

func ok(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

func is(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func same(t *testing.T, got, want any, what string) {
	t.Helper()
	if !sameRecord(got, want) {
		t.Fatalf("%s:\n got  %s\n want %s", what, show(got), show(want))
	}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// sameRecord compares two records the way a caller sees them: times by
// Equal (location and monotonic reading do not matter), nil and empty
// slices and maps alike, raw JSON by meaning.
func sameRecord(a, b any) bool {
	return equalValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

func equalValue(a, b reflect.Value) bool {
	if !a.IsValid() || !b.IsValid() {
		return a.IsValid() == b.IsValid()
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Type() {
	case timeType:
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	case rawType:
		return jsonEqual(a.Bytes(), b.Bytes())
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !equalValue(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	default:
		return a.Equal(b)
	}
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

// race runs fn(i) for i in [0, n) on n goroutines released at once.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// winners are the racers whose call succeeded. A racer that failed with
// anything but lost is an error of t.
func winners(t *testing.T, errs []error, lost error) []int {
	t.Helper()
	var won []int
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, i)
		case !errors.Is(err, lost):
			t.Errorf("racer %d: unexpected error %v", i, err)
		}
	}
	return won
}

// soleWinner is the one racer whose call succeeded, the others failing
// with lost; calls names them in the failure.
func soleWinner(t *testing.T, errs []error, lost error, calls string) int {
	t.Helper()
	won := winners(t, errs, lost)
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent %s succeeded, want exactly 1", len(won), len(errs), calls)
	}
	return won[0]
}

// --- records ---

func newClient(id string, rev int) *store.Client {
	return &store.Client{
		ID:                      id,
		Name:                    fmt.Sprintf("Client %s rev %d", id, rev),
		SecretDigest:            fmt.Sprintf("%064x", rev),
		TokenEndpointAuthMethod: "client_secret_basic",
		RedirectURIs:            []string{"https://" + id + ".example/callback"},
		PostLogoutRedirectURIs:  []string{"https://" + id + ".example/bye"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scopes:                  []string{"openid", "profile"},
		APIAccess:               map[string][]string{"https://api.example": {"read", "write"}},
		RequirePKCE:             rev%2 == 0,
		FirstParty:              rev%2 == 1,
		AlwaysIssueRefreshToken: true,
		Source:                  "admin",
		CreatedAt:               t0.Add(time.Duration(rev) * time.Second),
	}
}

func newUser(username string, rev int) *store.User {
	return &store.User{
		ID:            username,
		Username:      username,
		PasswordHash:  fmt.Sprintf("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$%d", rev),
		Email:         username + "@example.org",
		EmailVerified: rev%2 == 0,
		Name:          fmt.Sprintf("User %s rev %d", username, rev),
		Groups:        []string{"staff", "ops"},
		Claims:        map[string]any{"department": "R&D", "vip": rev%2 == 1},
		Source:        "config",
		CreatedAt:     t0.Add(time.Duration(rev) * time.Second),
	}
}

func newAPI(identifier string, rev int) *store.API {
	return &store.API{
		Identifier:          identifier,
		Name:                fmt.Sprintf("API rev %d", rev),
		Scopes:              []string{"read", "write"},
		TokenFormat:         "opaque",
		AccessTokenLifetime: int64(300 * (rev + 1)),
		Source:              "admin",
		CreatedAt:           t0.Add(time.Duration(rev) * time.Second),
	}
}

func newGrant(id, subject, clientID string, exp time.Time) *store.Grant {
	return &store.Grant{
		ID:        id,
		ClientID:  clientID,
		Subject:   subject,
		Scopes:    []string{"openid", "offline_access"},
		Audience:  "https://api.example",
		AuthTime:  t0.Add(-time.Minute),
		SessionID: "sid-" + subject,
		CreatedAt: t0,
		ExpiresAt: exp,
	}
}

func newRefresh(digest string, g *store.Grant, exp time.Time) *store.RefreshToken {
	return &store.RefreshToken{
		Digest:    digest,
		GrantID:   g.ID,
		ClientID:  g.ClientID,
		Subject:   g.Subject,
		Scopes:    g.Scopes,
		Audience:  g.Audience,
		CreatedAt: t0,
		ExpiresAt: exp,
	}
}

// newAccess returns an opaque access token; g nil means client credentials
// (no grant).
func newAccess(digest string, g *store.Grant, exp time.Time) *store.AccessToken {
	at := &store.AccessToken{
		Digest:    digest,
		ClientID:  "service",
		Subject:   "service",
		Scopes:    []string{"read"},
		Audience:  "https://api.example",
		JTI:       "jti-" + digest,
		IssuedAt:  t0,
		ExpiresAt: exp,
	}
	if g != nil {
		at.GrantID, at.ClientID, at.Subject, at.Scopes = g.ID, g.ClientID, g.Subject, g.Scopes
	}
	return at
}

func newCode(digest string, exp time.Time) *store.AuthCode {
	return &store.AuthCode{
		Digest:              digest,
		ClientID:            "app",
		RedirectURI:         "https://app.example/callback",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		GrantID:             "grant-of-" + digest,
		Subject:             "alice",
		Scopes:              []string{"openid", "profile"},
		Audience:            "https://api.example",
		Nonce:               "n-0S6_WzA2Mj",
		AuthTime:            t0.Add(-time.Minute),
		SessionID:           "sid-alice",
		CreatedAt:           t0,
		ExpiresAt:           exp,
	}
}

// newDevice returns a pending device authorization request whose code
// expires at codeExp and whose record expires at exp.
func newDevice(digest, userCode string, codeExp, exp time.Time) *store.DeviceCode {
	return &store.DeviceCode{
		Digest:        digest,
		UserCode:      userCode,
		ClientID:      "tv",
		Scopes:        []string{"openid", "offline_access"},
		Audience:      "https://api.example",
		Interval:      5,
		Status:        store.DevicePending,
		GrantID:       "grant-of-" + digest,
		CreatedAt:     t0,
		CodeExpiresAt: codeExp,
		ExpiresAt:     exp,
	}
}

func newConsent(subject, clientID string, scopes []string, exp time.Time) *store.Consent {
	return &store.Consent{Subject: subject, ClientID: clientID, Scopes: scopes, CreatedAt: t0, ExpiresAt: exp}
}

func newSession(id string, exp time.Time) *store.Session {
	return &store.Session{
		ID:        id,
		Subject:   "alice",
		AuthTime:  t0.Add(-time.Minute),
		AMR:       []string{"pwd", "otp"},
		CreatedAt: t0,
		ExpiresAt: exp,
	}
}

func newKey(id string, exp time.Time) *store.Key {
	return &store.Key{
		ID:          id,
		Alg:         "ES256",
		PrivateJWK:  json.RawMessage(`{"kty":"EC","crv":"P-256","kid":"` + id + `","d":"secret"}`),
		CreatedAt:   t0,
		ActiveUntil: t0.Add(time.Hour),
		ExpiresAt:   exp,
	}
}

// codeWithoutUsed returns a copy of c with Used cleared, for comparing what
// was stored with what TakeCode hands back (the contract does not say whether
// that copy shows the code before or after it was marked used).
func codeWithoutUsed(c *store.AuthCode) *store.AuthCode {
	if c == nil {
		return nil
	}
	cp := *c
	cp.Used = false
	return &cp
}

// refreshWithoutUsed is codeWithoutUsed for refresh tokens returned by
// RotateRefreshToken and GetRefreshToken.
func refreshWithoutUsed(rt *store.RefreshToken) *store.RefreshToken {
	if rt == nil {
		return nil
	}
	cp := *rt
	cp.Used = false
	return &cp
}

// --- clients, users, APIs ---

// crud describes one keyed catalog (clients, users, APIs) for testCRUD.
type crud[T any] struct {
	key  func(*T) string
	make func(key string, rev int) *T
	put  func(store.Store, context.Context, *T) error
	get  func(store.Store, context.Context, string) (*T, error)
	list func(store.Store, context.Context) ([]*T, error)
	del  func(store.Store, context.Context, string) error
}

var clientCRUD = crud[store.Client]{
	key:  func(c *store.Client) string { return c.ID },
	make: newClient,
	put:  store.Store.PutClient,
	get:  store.Store.GetClient,
	list: store.Store.ListClients,
	del:  store.Store.DeleteClient,
}

var userCRUD = crud[store.User]{
	key:  func(u *store.User) string { return u.Username },
	make: newUser,
	put:  store.Store.PutUser,
	get:  store.Store.GetUser,
	list: store.Store.ListUsers,
	del:  store.Store.DeleteUser,
}

var apiCRUD = crud[store.API]{
	key:  func(a *store.API) string { return a.Identifier },
	make: newAPI,
	put:  store.Store.PutAPI,
	get:  store.Store.GetAPI,
	list: store.Store.ListAPIs,
	del:  store.Store.DeleteAPI,
}

// sameSet checks a listing holds exactly want, in any order.
func sameSet[T any](t *testing.T, c crud[T], got []*T, want ...*T) {
	t.Helper()
	byKey := map[string]*T{}
	for _, g := range got {
		k := c.key(g)
		if _, dup := byKey[k]; dup {
			t.Fatalf("list returned %q twice", k)
		}
		byKey[k] = g
	}
	if len(got) != len(want) {
		t.Fatalf("list returned %d records, want %d: %s", len(got), len(want), show(got))
	}
	for _, w := range want {
		g, found := byKey[c.key(w)]
		if !found {
			t.Fatalf("list is missing %q: %s", c.key(w), show(got))
		}
		same(t, g, w, "listed record "+c.key(w))
	}
}

func (c crud[T]) test(t *testing.T, o opener) {
	runAll(t, o, []subtest{
		{"get unknown key is ErrNotFound", func(t *testing.T, f *fixture) {
			_, err := c.get(f.s, f.ctx, "no-such-key")
			is(t, err, store.ErrNotFound, "get unknown")
		}},
		{"put then get returns the record", func(t *testing.T, f *fixture) {
			want := c.make("alpha", 0)
			ok(t, c.put(f.s, f.ctx, want), "put")
			got, err := c.get(f.s, f.ctx, c.key(want))
			ok(t, err, "get")
			same(t, got, want, "get after put")
		}},
		{"put under an existing key replaces the record", func(t *testing.T, f *fixture) {
			ok(t, c.put(f.s, f.ctx, c.make("alpha", 0)), "put rev 0")
			want := c.make("alpha", 1)
			ok(t, c.put(f.s, f.ctx, want), "put rev 1")
			got, err := c.get(f.s, f.ctx, "alpha")
			ok(t, err, "get")
			same(t, got, want, "get after replace")
			all, err := c.list(f.s, f.ctx)
			ok(t, err, "list")
			sameSet(t, c, all, want)
		}},
		{"list of an empty store is empty", func(t *testing.T, f *fixture) {
			all, err := c.list(f.s, f.ctx)
			ok(t, err, "list")
			if len(all) != 0 {
				t.Fatalf("list of empty store returned %s", show(all))
			}
		}},
		{"list returns every record", func(t *testing.T, f *fixture) {
			want := []*T{c.make("alpha", 0), c.make("bravo", 1), c.make("charlie", 2)}
			for _, w := range want {
				ok(t, c.put(f.s, f.ctx, w), "put "+c.key(w))
			}
			all, err := c.list(f.s, f.ctx)
			ok(t, err, "list")
			sameSet(t, c, all, want...)
		}},
		{"delete then get is ErrNotFound and others remain", func(t *testing.T, f *fixture) {
			a, b := c.make("alpha", 0), c.make("alphabet", 1)
			ok(t, c.put(f.s, f.ctx, a), "put alpha")
			ok(t, c.put(f.s, f.ctx, b), "put alphabet")
			ok(t, c.del(f.s, f.ctx, "alpha"), "delete alpha")
			_, err := c.get(f.s, f.ctx, "alpha")
			is(t, err, store.ErrNotFound, "get after delete")
			got, err := c.get(f.s, f.ctx, "alphabet")
			ok(t, err, "get the other record")
			same(t, got, b, "other record")
			all, err := c.list(f.s, f.ctx)
			ok(t, err, "list")
			sameSet(t, c, all, b)
		}},
		{"records never expire", func(t *testing.T, f *fixture) {
			want := c.make("alpha", 0)
			ok(t, c.put(f.s, f.ctx, want), "put")
			f.clk.Set(t0.AddDate(50, 0, 0))
			got, err := c.get(f.s, f.ctx, "alpha")
			ok(t, err, "get 50 years later")
			same(t, got, want, "get 50 years later")
		}},
	})
}

// --- expiry ---

// expiring describes a kind of record with an ExpiresAt for testExpiry.
type expiring struct {
	name string
	// put stores a record under id that expires at exp.
	put func(f *fixture, id string, exp time.Time) error
	// live is nil when the record under id can be read, an error wrapping
	// store.ErrNotFound when it cannot.
	live func(f *fixture, id string) error
}

var expiringKinds = []expiring{
	{"authorization code",
		func(f *fixture, id string, exp time.Time) error { return f.s.PutCode(f.ctx, newCode(id, exp)) },
		func(f *fixture, id string) error {
			_, err := f.s.TakeCode(f.ctx, id)
			if errors.Is(err, store.ErrAlreadyUsed) {
				return nil // still there, taken by an earlier look
			}
			return err
		}},
	{"grant",
		func(f *fixture, id string, exp time.Time) error {
			return f.s.PutGrant(f.ctx, newGrant(id, "alice", "app", exp))
		},
		func(f *fixture, id string) error { _, err := f.s.GetGrant(f.ctx, id); return err }},
	{"refresh token",
		func(f *fixture, id string, exp time.Time) error {
			g := newGrant("grant-"+id, "alice", "app", exp.Add(24*time.Hour))
			return f.s.IssueGrant(f.ctx, g, newRefresh(id, g, exp), nil)
		},
		func(f *fixture, id string) error { _, err := f.s.GetRefreshToken(f.ctx, id); return err }},
	{"opaque access token of a grant",
		func(f *fixture, id string, exp time.Time) error {
			g := newGrant("grant-"+id, "alice", "app", exp.Add(24*time.Hour))
			return f.s.IssueGrant(f.ctx, g, nil, newAccess(id, g, exp))
		},
		func(f *fixture, id string) error { _, err := f.s.GetAccessToken(f.ctx, id); return err }},
	{"client credentials access token",
		func(f *fixture, id string, exp time.Time) error {
			return f.s.PutAccessToken(f.ctx, newAccess(id, nil, exp))
		},
		func(f *fixture, id string) error { _, err := f.s.GetAccessToken(f.ctx, id); return err }},
	{"device code",
		func(f *fixture, id string, exp time.Time) error {
			return f.s.PutDeviceCode(f.ctx, newDevice(id, "UC-"+id, exp.Add(-5*time.Minute), exp))
		},
		func(f *fixture, id string) error { _, err := f.s.GetDeviceCode(f.ctx, id); return err }},
	{"session",
		func(f *fixture, id string, exp time.Time) error { return f.s.PutSession(f.ctx, newSession(id, exp)) },
		func(f *fixture, id string) error { _, err := f.s.GetSession(f.ctx, id); return err }},
	{"consent with ExpiresAt",
		func(f *fixture, id string, exp time.Time) error {
			return f.s.PutConsent(f.ctx, newConsent(id, "app", []string{"openid"}, exp))
		},
		func(f *fixture, id string) error { _, err := f.s.GetConsent(f.ctx, id, "app"); return err }},
	{"revoked JTI",
		func(f *fixture, id string, exp time.Time) error { return f.s.RevokeJTI(f.ctx, id, exp) },
		func(f *fixture, id string) error {
			revoked, err := f.s.IsJTIRevoked(f.ctx, id)
			if err == nil && !revoked {
				err = fmt.Errorf("IsJTIRevoked is false: %w", store.ErrNotFound)
			}
			return err
		}},
	{"signing key",
		func(f *fixture, id string, exp time.Time) error { return f.s.PutKey(f.ctx, newKey(id, exp)) },
		func(f *fixture, id string) error {
			keys, err := f.s.ListKeys(f.ctx)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.ID == id {
					return nil
				}
			}
			return fmt.Errorf("ListKeys lacks %q: %w", id, store.ErrNotFound)
		}},
}

func testExpiry(t *testing.T, o opener) {
	exp := t0.Add(time.Hour)
	for _, k := range expiringKinds {
		t.Run(k.name, func(t *testing.T) {
			runAll(t, o, []subtest{
				{"readable until ExpiresAt, ErrNotFound from ExpiresAt on without Sweep", func(t *testing.T, f *fixture) {
					ok(t, k.put(f, "rec-1", exp), "put")
					steps := []struct {
						at   time.Time
						live bool
					}{
						{t0, true},
						{exp.Add(-time.Second), true},
						{exp, false},
						{exp.Add(time.Hour), false},
					}
					for _, st := range steps {
						f.clk.Set(st.at)
						err := k.live(f, "rec-1")
						if st.live {
							ok(t, err, fmt.Sprintf("read at ExpiresAt%+v", st.at.Sub(exp)))
						} else {
							is(t, err, store.ErrNotFound, fmt.Sprintf("read at ExpiresAt%+v", st.at.Sub(exp)))
						}
					}
				}},
				{"Sweep after ExpiresAt removes it and counts it", func(t *testing.T, f *fixture) {
					ok(t, k.put(f, "rec-1", exp), "put")
					f.clk.Set(exp.Add(time.Minute))
					n, err := f.s.Sweep(f.ctx, f.clk.Now())
					ok(t, err, "Sweep")
					if n <= 0 {
						t.Fatalf("Sweep removed %d records, want > 0", n)
					}
					// Turn the clock back: only a record Sweep really
					// deleted stays invisible.
					f.clk.Set(t0)
					is(t, k.live(f, "rec-1"), store.ErrNotFound, "read after Sweep with the clock turned back")
				}},
				{"Sweep before ExpiresAt keeps it and counts nothing", func(t *testing.T, f *fixture) {
					ok(t, k.put(f, "rec-1", exp), "put")
					n, err := f.s.Sweep(f.ctx, exp.Add(-time.Minute))
					ok(t, err, "Sweep")
					if n != 0 {
						t.Fatalf("Sweep of live records removed %d, want 0", n)
					}
					ok(t, k.live(f, "rec-1"), "read after Sweep")
				}},
			})
		})
	}
}

func testSweep(t *testing.T, o opener) {
	runAll(t, o, []subtest{
		{"records without expiry survive Sweep", func(t *testing.T, f *fixture) {
			client, user, api := newClient("app", 0), newUser("alice", 0), newAPI("https://api.example", 0)
			consent := newConsent("alice", "app", []string{"openid"}, time.Time{})
			ok(t, f.s.PutClient(f.ctx, client), "PutClient")
			ok(t, f.s.PutUser(f.ctx, user), "PutUser")
			ok(t, f.s.PutAPI(f.ctx, api), "PutAPI")
			ok(t, f.s.PutConsent(f.ctx, consent), "PutConsent")
			// Leading bytes that would read as an expiry in 1970 if a backend
			// mistook the secret for a record with an expiry header.
			secret, err := f.s.GetOrCreateSecret(f.ctx, "cookie", func() ([]byte, error) {
				return []byte("\x00\x00\x00\x00\x00\x00\x00\x01-random-bytes"), nil
			})
			ok(t, err, "GetOrCreateSecret")
			ok(t, f.s.PutSession(f.ctx, newSession("old", t0.Add(time.Hour))), "PutSession")

			later := t0.AddDate(10, 0, 0)
			f.clk.Set(later)
			n, err := f.s.Sweep(f.ctx, later)
			ok(t, err, "Sweep")
			if n <= 0 {
				t.Fatalf("Sweep removed %d records, want > 0 (the expired session)", n)
			}
			_, err = f.s.GetSession(f.ctx, "old")
			is(t, err, store.ErrNotFound, "expired session")

			gotClient, err := f.s.GetClient(f.ctx, "app")
			ok(t, err, "GetClient after Sweep")
			same(t, gotClient, client, "client after Sweep")
			gotUser, err := f.s.GetUser(f.ctx, "alice")
			ok(t, err, "GetUser after Sweep")
			same(t, gotUser, user, "user after Sweep")
			gotAPI, err := f.s.GetAPI(f.ctx, "https://api.example")
			ok(t, err, "GetAPI after Sweep")
			same(t, gotAPI, api, "API after Sweep")
			gotConsent, err := f.s.GetConsent(f.ctx, "alice", "app")
			ok(t, err, "GetConsent after Sweep")
			same(t, gotConsent, consent, "consent after Sweep")
			gotSecret, err := f.s.GetOrCreateSecret(f.ctx, "cookie", func() ([]byte, error) {
				t.Error("create called for a secret that survived Sweep")
				return []byte("other"), nil
			})
			ok(t, err, "GetOrCreateSecret after Sweep")
			if !bytes.Equal(gotSecret, secret) {
				t.Fatalf("secret after Sweep = %q, want %q", gotSecret, secret)
			}
		}},
		{"Sweep of an empty store removes nothing", func(t *testing.T, f *fixture) {
			n, err := f.s.Sweep(f.ctx, t0)
			ok(t, err, "Sweep")
			if n != 0 {
				t.Fatalf("Sweep of an empty store removed %d", n)
			}
		}},
		{"Sweep keeps live records next to expired ones", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutSession(f.ctx, newSession("dead", t0.Add(time.Minute))), "put dead")
			live := newSession("live", t0.Add(2*time.Hour))
			ok(t, f.s.PutSession(f.ctx, live), "put live")
			n, err := f.s.Sweep(f.ctx, t0.Add(time.Hour))
			ok(t, err, "Sweep")
			if n <= 0 {
				t.Fatalf("Sweep removed %d, want > 0", n)
			}
			got, err := f.s.GetSession(f.ctx, "live")
			ok(t, err, "GetSession live")
			same(t, got, live, "live session")
		}},
	})
}

// --- authorization codes ---

func testAuthCodes(t *testing.T, o opener) {
	exp := t0.Add(10 * time.Minute)
	runAll(t, o, []subtest{
		{"first TakeCode returns the code", func(t *testing.T, f *fixture) {
			want := newCode("code-1", exp)
			ok(t, f.s.PutCode(f.ctx, want), "PutCode")
			got, err := f.s.TakeCode(f.ctx, "code-1")
			ok(t, err, "TakeCode")
			same(t, codeWithoutUsed(got), want, "taken code")
		}},
		{"second TakeCode returns the record with ErrAlreadyUsed", func(t *testing.T, f *fixture) {
			want := newCode("code-1", exp)
			ok(t, f.s.PutCode(f.ctx, want), "PutCode")
			_, err := f.s.TakeCode(f.ctx, "code-1")
			ok(t, err, "first TakeCode")
			got, err := f.s.TakeCode(f.ctx, "code-1")
			is(t, err, store.ErrAlreadyUsed, "second TakeCode")
			if got == nil {
				t.Fatal("second TakeCode returned no record: the caller cannot revoke its grant")
			}
			same(t, codeWithoutUsed(got), want, "record returned with ErrAlreadyUsed")
			_, err = f.s.TakeCode(f.ctx, "code-1")
			is(t, err, store.ErrAlreadyUsed, "third TakeCode")
		}},
		{"TakeCode of an unknown digest is ErrNotFound", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutCode(f.ctx, newCode("code-1", exp)), "PutCode")
			got, err := f.s.TakeCode(f.ctx, "code-2")
			is(t, err, store.ErrNotFound, "TakeCode unknown")
			if got != nil {
				t.Fatalf("TakeCode unknown returned %s", show(got))
			}
		}},
		{"PutCode of an existing digest is ErrConflict and keeps the original", func(t *testing.T, f *fixture) {
			want := newCode("code-1", exp)
			ok(t, f.s.PutCode(f.ctx, want), "PutCode")
			other := newCode("code-1", exp.Add(time.Hour))
			other.ClientID, other.Subject = "evil", "mallory"
			is(t, f.s.PutCode(f.ctx, other), store.ErrConflict, "PutCode again")
			got, err := f.s.TakeCode(f.ctx, "code-1")
			ok(t, err, "TakeCode")
			same(t, codeWithoutUsed(got), want, "code after conflicting put")
		}},
		{"PutCode of a used digest is ErrConflict and the code stays used", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutCode(f.ctx, newCode("code-1", exp)), "PutCode")
			_, err := f.s.TakeCode(f.ctx, "code-1")
			ok(t, err, "TakeCode")
			is(t, f.s.PutCode(f.ctx, newCode("code-1", exp)), store.ErrConflict, "PutCode of used digest")
			_, err = f.s.TakeCode(f.ctx, "code-1")
			is(t, err, store.ErrAlreadyUsed, "TakeCode after conflicting put")
		}},
		{"concurrent TakeCode of one digest: exactly one succeeds", func(t *testing.T, f *fixture) {
			want := newCode("code-1", exp)
			ok(t, f.s.PutCode(f.ctx, want), "PutCode")
			got := make([]*store.AuthCode, racers)
			errs := make([]error, racers)
			race(racers, func(i int) { got[i], errs[i] = f.s.TakeCode(f.ctx, "code-1") })
			winner := soleWinner(t, errs, store.ErrAlreadyUsed, "TakeCode calls")
			same(t, codeWithoutUsed(got[winner]), want, "winner's code")
			for i, err := range errs {
				if errors.Is(err, store.ErrAlreadyUsed) && (got[i] == nil || got[i].Digest != "code-1") {
					t.Errorf("racer %d: ErrAlreadyUsed without the record: %s", i, show(got[i]))
				}
			}
		}},
	})
}

// --- device authorization requests ---

// decision is alice's decision on a device authorization request.
func decision(approved bool) store.DeviceDecision {
	return store.DeviceDecision{Approved: approved, Subject: "alice", AuthTime: t0.Add(-time.Minute), SessionID: "sid-alice", At: t0.Add(time.Minute)}
}

// decided is d as DecideDeviceCode(dec) leaves it.
func decided(d *store.DeviceCode, dec store.DeviceDecision) *store.DeviceCode {
	cp := *d
	cp.Status = store.DeviceDenied
	if dec.Approved {
		cp.Status = store.DeviceApproved
	}
	cp.Subject, cp.AuthTime, cp.SessionID, cp.DecidedAt = dec.Subject, dec.AuthTime, dec.SessionID, dec.At
	return &cp
}

// withStatus is a copy of d with another status.
func withStatus(d *store.DeviceCode, status string) *store.DeviceCode {
	cp := *d
	cp.Status = status
	return &cp
}

func testDeviceCodes(t *testing.T, o opener) {
	codeExp, exp := t0.Add(10*time.Minute), t0.Add(15*time.Minute)
	runAll(t, o, []subtest{
		{"PutDeviceCode then get by digest and by user code", func(t *testing.T, f *fixture) {
			want := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, want), "PutDeviceCode")
			got, err := f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "GetDeviceCode")
			same(t, got, want, "GetDeviceCode")
			got, err = f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJK")
			ok(t, err, "GetDeviceCodeByUserCode")
			same(t, got, want, "GetDeviceCodeByUserCode")
		}},
		{"unknown digest and user code are ErrNotFound", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutDeviceCode(f.ctx, newDevice("dc-1", "BCDFGHJK", codeExp, exp)), "PutDeviceCode")
			_, err := f.s.GetDeviceCode(f.ctx, "dc-2")
			is(t, err, store.ErrNotFound, "GetDeviceCode unknown")
			_, err = f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJL")
			is(t, err, store.ErrNotFound, "GetDeviceCodeByUserCode unknown")
			_, err = f.s.DecideDeviceCode(f.ctx, "dc-2", decision(true))
			is(t, err, store.ErrNotFound, "DecideDeviceCode unknown")
			_, err = f.s.TakeDeviceCode(f.ctx, "dc-2")
			is(t, err, store.ErrNotFound, "TakeDeviceCode unknown")
		}},
		{"PutDeviceCode of an existing digest is ErrConflict and keeps the original", func(t *testing.T, f *fixture) {
			want := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, want), "PutDeviceCode")
			other := newDevice("dc-1", "ZXWVTSRQ", codeExp, exp)
			other.ClientID = "evil"
			is(t, f.s.PutDeviceCode(f.ctx, other), store.ErrConflict, "PutDeviceCode again")
			got, err := f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "GetDeviceCode")
			same(t, got, want, "device code after conflicting put")
			_, err = f.s.GetDeviceCodeByUserCode(f.ctx, "ZXWVTSRQ")
			is(t, err, store.ErrNotFound, "user code of the refused put")
		}},
		{"a user code is unique until its code expires, then reusable", func(t *testing.T, f *fixture) {
			first := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, first), "PutDeviceCode")
			is(t, f.s.PutDeviceCode(f.ctx, newDevice("dc-2", "BCDFGHJK", codeExp, exp)), store.ErrConflict, "same user code, live")
			_, err := f.s.GetDeviceCode(f.ctx, "dc-2")
			is(t, err, store.ErrNotFound, "request refused for its user code")

			f.clk.Set(codeExp)
			second := newDevice("dc-2", "BCDFGHJK", codeExp.Add(10*time.Minute), exp.Add(10*time.Minute))
			ok(t, f.s.PutDeviceCode(f.ctx, second), "same user code after the first code expired")
			got, err := f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJK")
			ok(t, err, "GetDeviceCodeByUserCode")
			same(t, got, second, "the user code names the new request")
			got, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "the first request is still readable by digest")
			same(t, got, first, "first request")
		}},
		{"past CodeExpiresAt: readable by digest only, until ExpiresAt", func(t *testing.T, f *fixture) {
			want := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, want), "PutDeviceCode")
			f.clk.Set(codeExp.Add(-time.Second))
			_, err := f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJK")
			ok(t, err, "by user code a second before the code expires")

			f.clk.Set(codeExp)
			_, err = f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJK")
			is(t, err, store.ErrNotFound, "by user code once the code expired")
			got, err := f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "by digest once the code expired")
			same(t, got, want, "expired code's record")
			_, err = f.s.DecideDeviceCode(f.ctx, "dc-1", decision(true))
			is(t, err, store.ErrNotFound, "DecideDeviceCode once the code expired")
			_, err = f.s.TakeDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrNotFound, "TakeDeviceCode once the code expired")
			got, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "by digest after the refused decision")
			same(t, got, want, "the refused decision changed nothing")

			f.clk.Set(exp)
			_, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrNotFound, "by digest at ExpiresAt")
		}},
		{"approve once: a second decision is ErrAlreadyUsed and changes nothing", func(t *testing.T, f *fixture) {
			d := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, d), "PutDeviceCode")
			want := decided(d, decision(true))
			got, err := f.s.DecideDeviceCode(f.ctx, "dc-1", decision(true))
			ok(t, err, "DecideDeviceCode approve")
			same(t, got, want, "approved request")
			got, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "GetDeviceCode")
			same(t, got, want, "approved request as stored")

			deny := decision(false)
			deny.Subject = "mallory"
			got, err = f.s.DecideDeviceCode(f.ctx, "dc-1", deny)
			is(t, err, store.ErrAlreadyUsed, "second DecideDeviceCode")
			if got == nil {
				t.Fatal("second DecideDeviceCode returned no record")
			}
			same(t, got, want, "record returned with ErrAlreadyUsed")
			got, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "GetDeviceCode")
			same(t, got, want, "request after the second decision")
		}},
		{"a denied request cannot be approved or taken", func(t *testing.T, f *fixture) {
			d := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, d), "PutDeviceCode")
			want := decided(d, decision(false))
			got, err := f.s.DecideDeviceCode(f.ctx, "dc-1", decision(false))
			ok(t, err, "DecideDeviceCode deny")
			same(t, got, want, "denied request")
			_, err = f.s.DecideDeviceCode(f.ctx, "dc-1", decision(true))
			is(t, err, store.ErrAlreadyUsed, "approving a denied request")
			got, err = f.s.TakeDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrNotApproved, "TakeDeviceCode of a denied request")
			same(t, got, want, "record returned with ErrNotApproved")
		}},
		{"a pending request cannot be taken and stays pending", func(t *testing.T, f *fixture) {
			d := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, d), "PutDeviceCode")
			got, err := f.s.TakeDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrNotApproved, "TakeDeviceCode of a pending request")
			same(t, got, d, "record returned with ErrNotApproved")
			got, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "GetDeviceCode")
			same(t, got, d, "request after the refused take")
			_, err = f.s.DecideDeviceCode(f.ctx, "dc-1", decision(true))
			ok(t, err, "DecideDeviceCode after the refused take")
		}},
		{"take once: a second take is ErrAlreadyUsed, even after the code expired", func(t *testing.T, f *fixture) {
			d := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, d), "PutDeviceCode")
			approved, err := f.s.DecideDeviceCode(f.ctx, "dc-1", decision(true))
			ok(t, err, "DecideDeviceCode")
			want := withStatus(approved, store.DeviceIssued)
			got, err := f.s.TakeDeviceCode(f.ctx, "dc-1")
			ok(t, err, "TakeDeviceCode")
			same(t, got, want, "taken request")
			got, err = f.s.TakeDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrAlreadyUsed, "second TakeDeviceCode")
			if got == nil {
				t.Fatal("second TakeDeviceCode returned no record: the caller cannot revoke its grant")
			}
			same(t, got, want, "record returned with ErrAlreadyUsed")
			_, err = f.s.DecideDeviceCode(f.ctx, "dc-1", decision(false))
			is(t, err, store.ErrAlreadyUsed, "deciding an issued request")

			f.clk.Set(codeExp.Add(time.Minute))
			got, err = f.s.TakeDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrAlreadyUsed, "TakeDeviceCode after the code expired")
			same(t, got, want, "record returned after the code expired")
		}},
		{"concurrent DecideDeviceCode of one request: exactly one decides", func(t *testing.T, f *fixture) {
			d := newDevice("dc-1", "BCDFGHJK", codeExp, exp)
			ok(t, f.s.PutDeviceCode(f.ctx, d), "PutDeviceCode")
			got := make([]*store.DeviceCode, racers)
			errs := make([]error, racers)
			decisions := make([]store.DeviceDecision, racers)
			for i := range decisions {
				decisions[i] = decision(i%2 == 0)
				decisions[i].Subject = fmt.Sprintf("user-%02d", i)
			}
			race(racers, func(i int) { got[i], errs[i] = f.s.DecideDeviceCode(f.ctx, "dc-1", decisions[i]) })
			winner := soleWinner(t, errs, store.ErrAlreadyUsed, "DecideDeviceCode calls")
			want := decided(d, decisions[winner])
			stored, err := f.s.GetDeviceCode(f.ctx, "dc-1")
			ok(t, err, "GetDeviceCode")
			same(t, stored, want, "the stored decision is the winner's")
			for i, err := range errs {
				if errors.Is(err, store.ErrAlreadyUsed) {
					same(t, got[i], want, fmt.Sprintf("racer %d's record", i))
				}
			}
		}},
		{"concurrent TakeDeviceCode of one request: exactly one succeeds", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutDeviceCode(f.ctx, newDevice("dc-1", "BCDFGHJK", codeExp, exp)), "PutDeviceCode")
			approved, err := f.s.DecideDeviceCode(f.ctx, "dc-1", decision(true))
			ok(t, err, "DecideDeviceCode")
			want := withStatus(approved, store.DeviceIssued)
			got := make([]*store.DeviceCode, racers)
			errs := make([]error, racers)
			race(racers, func(i int) { got[i], errs[i] = f.s.TakeDeviceCode(f.ctx, "dc-1") })
			winner := soleWinner(t, errs, store.ErrAlreadyUsed, "TakeDeviceCode calls")
			same(t, got[winner], want, "winner's request")
			for i, err := range errs {
				if errors.Is(err, store.ErrAlreadyUsed) && (got[i] == nil || got[i].GrantID != want.GrantID) {
					t.Errorf("racer %d: ErrAlreadyUsed without the record: %s", i, show(got[i]))
				}
			}
		}},
		{"concurrent PutDeviceCode of one user code: exactly one is stored", func(t *testing.T, f *fixture) {
			errs := make([]error, racers)
			race(racers, func(i int) {
				errs[i] = f.s.PutDeviceCode(f.ctx, newDevice(fmt.Sprintf("dc-%02d", i), "BCDFGHJK", codeExp, exp))
			})
			winner := soleWinner(t, errs, store.ErrConflict, "PutDeviceCode calls of user code BCDFGHJK")
			got, err := f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJK")
			ok(t, err, "GetDeviceCodeByUserCode")
			if want := fmt.Sprintf("dc-%02d", winner); got.Digest != want {
				t.Fatalf("user code names %s, want the winner %s", got.Digest, want)
			}
		}},
		{"Sweep collects the request and its user code", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutDeviceCode(f.ctx, newDevice("dc-1", "BCDFGHJK", codeExp, exp)), "PutDeviceCode")
			n, err := f.s.Sweep(f.ctx, exp.Add(time.Minute))
			ok(t, err, "Sweep")
			if n != 1 {
				t.Fatalf("Sweep removed %d records, want 1 (the request; its index entry is not a record)", n)
			}
			// With the clock turned back, only what Sweep deleted is gone.
			_, err = f.s.GetDeviceCode(f.ctx, "dc-1")
			is(t, err, store.ErrNotFound, "GetDeviceCode after Sweep")
			_, err = f.s.GetDeviceCodeByUserCode(f.ctx, "BCDFGHJK")
			is(t, err, store.ErrNotFound, "GetDeviceCodeByUserCode after Sweep")
			// The user code went too: it is free again, even at t0.
			ok(t, f.s.PutDeviceCode(f.ctx, newDevice("dc-2", "BCDFGHJK", codeExp, exp)), "PutDeviceCode of the swept user code")
		}},
	})
}

// --- grants, refresh tokens ---

func testGrants(t *testing.T, o opener) {
	exp := t0.Add(24 * time.Hour)
	runAll(t, o, []subtest{
		{"PutGrant then GetGrant returns the grant", func(t *testing.T, f *fixture) {
			g := newGrant("grant-1", "alice", "app", exp)
			ok(t, f.s.PutGrant(f.ctx, g), "PutGrant")
			got, err := f.s.GetGrant(f.ctx, "grant-1")
			ok(t, err, "GetGrant")
			same(t, got, g, "grant")
		}},
		{"GetGrant of an unknown id is ErrNotFound", func(t *testing.T, f *fixture) {
			_, err := f.s.GetGrant(f.ctx, "grant-404")
			is(t, err, store.ErrNotFound, "GetGrant unknown")
		}},
		{"IssueGrant stores the grant, refresh token and opaque access token", func(t *testing.T, f *fixture) {
			g := newGrant("grant-1", "alice", "app", exp)
			rt := newRefresh("rt-1", g, exp)
			at := newAccess("at-1", g, t0.Add(time.Hour))
			ok(t, f.s.IssueGrant(f.ctx, g, rt, at), "IssueGrant")
			gotG, err := f.s.GetGrant(f.ctx, g.ID)
			ok(t, err, "GetGrant")
			same(t, gotG, g, "grant")
			gotRT, err := f.s.GetRefreshToken(f.ctx, rt.Digest)
			ok(t, err, "GetRefreshToken")
			same(t, gotRT, rt, "refresh token")
			gotAT, err := f.s.GetAccessToken(f.ctx, at.Digest)
			ok(t, err, "GetAccessToken")
			same(t, gotAT, at, "access token")
		}},
		{"IssueGrant with nil tokens stores only the grant", func(t *testing.T, f *fixture) {
			g := newGrant("grant-1", "alice", "app", exp)
			ok(t, f.s.IssueGrant(f.ctx, g, nil, nil), "IssueGrant")
			got, err := f.s.GetGrant(f.ctx, g.ID)
			ok(t, err, "GetGrant")
			same(t, got, g, "grant")
		}},
	})
}

func testRefreshTokens(t *testing.T, o opener) {
	exp := t0.Add(24 * time.Hour)
	// issue stores grant-1 with refresh token rt-1 and access token at-1.
	issue := func(t *testing.T, f *fixture) (*store.Grant, *store.RefreshToken) {
		t.Helper()
		g := newGrant("grant-1", "alice", "app", exp)
		rt := newRefresh("rt-1", g, exp)
		ok(t, f.s.IssueGrant(f.ctx, g, rt, newAccess("at-1", g, t0.Add(time.Hour))), "IssueGrant")
		return g, rt
	}
	tests := []subtest{
		{"GetRefreshToken of an unknown digest is ErrNotFound", func(t *testing.T, f *fixture) {
			issue(t, f)
			_, err := f.s.GetRefreshToken(f.ctx, "rt-404")
			is(t, err, store.ErrNotFound, "GetRefreshToken unknown")
		}},
		{"rotating a used token returns the old record with ErrAlreadyUsed and stores nothing", func(t *testing.T, f *fixture) {
			g, rt1 := issue(t, f)
			rt2 := newRefresh("rt-2", g, exp)
			_, err := f.s.RotateRefreshToken(f.ctx, "rt-1", rt2, newAccess("at-2", g, t0.Add(time.Hour)))
			ok(t, err, "first rotation")
			old, err := f.s.RotateRefreshToken(f.ctx, "rt-1", newRefresh("rt-3", g, exp), newAccess("at-3", g, t0.Add(time.Hour)))
			is(t, err, store.ErrAlreadyUsed, "second rotation of rt-1")
			if old == nil {
				t.Fatal("replayed rotation returned no record: the caller cannot revoke the family")
			}
			same(t, refreshWithoutUsed(old), rt1, "record returned with ErrAlreadyUsed")
			_, err = f.s.GetRefreshToken(f.ctx, "rt-3")
			is(t, err, store.ErrNotFound, "next token of the replayed rotation")
			_, err = f.s.GetAccessToken(f.ctx, "at-3")
			is(t, err, store.ErrNotFound, "access token of the replayed rotation")
			got, err := f.s.GetRefreshToken(f.ctx, "rt-2")
			ok(t, err, "GetRefreshToken of the first rotation's token")
			same(t, got, rt2, "first rotation's token")
		}},
		{"GetRefreshToken of a used token is ErrAlreadyUsed with the record", func(t *testing.T, f *fixture) {
			g, rt1 := issue(t, f)
			_, err := f.s.RotateRefreshToken(f.ctx, "rt-1", newRefresh("rt-2", g, exp), nil)
			ok(t, err, "rotation")
			got, err := f.s.GetRefreshToken(f.ctx, "rt-1")
			is(t, err, store.ErrAlreadyUsed, "GetRefreshToken of rotated token")
			if got == nil {
				t.Fatal("GetRefreshToken of a used token returned no record")
			}
			same(t, refreshWithoutUsed(got), rt1, "used token's record")
		}},
		{"RotateRefreshToken of an unknown digest is ErrNotFound and stores nothing", func(t *testing.T, f *fixture) {
			g, _ := issue(t, f)
			_, err := f.s.RotateRefreshToken(f.ctx, "rt-404", newRefresh("rt-2", g, exp), newAccess("at-2", g, t0.Add(time.Hour)))
			is(t, err, store.ErrNotFound, "RotateRefreshToken unknown")
			_, err = f.s.GetRefreshToken(f.ctx, "rt-2")
			is(t, err, store.ErrNotFound, "next token")
			_, err = f.s.GetAccessToken(f.ctx, "at-2")
			is(t, err, store.ErrNotFound, "access token")
		}},
		{"refresh token of an expired grant is ErrNotFound before the token expires", func(t *testing.T, f *fixture) {
			g := newGrant("grant-1", "alice", "app", t0.Add(time.Hour))
			ok(t, f.s.IssueGrant(f.ctx, g, newRefresh("rt-1", g, t0.Add(48*time.Hour)), nil), "IssueGrant")
			f.clk.Set(t0.Add(2 * time.Hour))
			_, err := f.s.GetRefreshToken(f.ctx, "rt-1")
			is(t, err, store.ErrNotFound, "GetRefreshToken")
			_, err = f.s.RotateRefreshToken(f.ctx, "rt-1", newRefresh("rt-2", g, t0.Add(48*time.Hour)), nil)
			is(t, err, store.ErrNotFound, "RotateRefreshToken")
			f.clk.Set(t0)
			_, err = f.s.GetRefreshToken(f.ctx, "rt-2")
			is(t, err, store.ErrNotFound, "next token of the refused rotation")
		}},
		{"concurrent rotations of one token: exactly one succeeds, the others get ErrAlreadyUsed", func(t *testing.T, f *fixture) {
			g, rt1 := issue(t, f)
			olds := make([]*store.RefreshToken, racers)
			errs := make([]error, racers)
			race(racers, func(i int) {
				next := newRefresh(fmt.Sprintf("rt-next-%02d", i), g, exp)
				at := newAccess(fmt.Sprintf("at-next-%02d", i), g, t0.Add(time.Hour))
				olds[i], errs[i] = f.s.RotateRefreshToken(f.ctx, "rt-1", next, at)
			})
			winner := soleWinner(t, errs, store.ErrAlreadyUsed, "rotations of rt-1")
			same(t, refreshWithoutUsed(olds[winner]), rt1, "winner's old token")
			for i, err := range errs {
				if errors.Is(err, store.ErrAlreadyUsed) && (olds[i] == nil || olds[i].Digest != "rt-1") {
					t.Errorf("racer %d: ErrAlreadyUsed without the old record: %s", i, show(olds[i]))
				}
			}
			for i := range racers {
				_, rtErr := f.s.GetRefreshToken(f.ctx, fmt.Sprintf("rt-next-%02d", i))
				_, atErr := f.s.GetAccessToken(f.ctx, fmt.Sprintf("at-next-%02d", i))
				if i == winner {
					ok(t, rtErr, "winner's next refresh token")
					ok(t, atErr, "winner's access token")
				} else if rtErr == nil || atErr == nil {
					t.Errorf("racer %d lost but its tokens were stored (refresh: %v, access: %v)", i, rtErr, atErr)
				}
			}
		}},
	}
	tests = append(tests, subtest{"the DPoP key binding (JKT) is kept by IssueGrant and RotateRefreshToken", func(t *testing.T, f *fixture) {
		g := newGrant("grant-1", "alice", "app", exp)
		rt1 := newRefresh("rt-1", g, exp)
		rt1.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
		at1 := newAccess("at-1", g, t0.Add(time.Hour))
		at1.JKT = rt1.JKT
		ok(t, f.s.IssueGrant(f.ctx, g, rt1, at1), "IssueGrant")
		got, err := f.s.GetRefreshToken(f.ctx, "rt-1")
		ok(t, err, "GetRefreshToken")
		same(t, got, rt1, "bound refresh token")
		gotAT, err := f.s.GetAccessToken(f.ctx, "at-1")
		ok(t, err, "GetAccessToken")
		same(t, gotAT, at1, "bound access token")

		rt2 := newRefresh("rt-2", g, exp)
		rt2.JKT = rt1.JKT
		at2 := newAccess("at-2", g, t0.Add(time.Hour))
		at2.JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
		old, err := f.s.RotateRefreshToken(f.ctx, "rt-1", rt2, at2)
		ok(t, err, "RotateRefreshToken")
		same(t, refreshWithoutUsed(old), rt1, "old bound token returned by the rotation")
		got, err = f.s.GetRefreshToken(f.ctx, "rt-2")
		ok(t, err, "GetRefreshToken of the rotated token")
		same(t, got, rt2, "rotated bound refresh token")
		gotAT, err = f.s.GetAccessToken(f.ctx, "at-2")
		ok(t, err, "GetAccessToken of the rotation's token")
		same(t, gotAT, at2, "access token bound to another key")
		used, err := f.s.GetRefreshToken(f.ctx, "rt-1")
		is(t, err, store.ErrAlreadyUsed, "GetRefreshToken of the used token")
		same(t, refreshWithoutUsed(used), rt1, "used bound token")
	}})
	// Rotation with and without an access token issued alongside.
	for _, withAT := range []bool{true, false} {
		name := "RotateRefreshToken returns the old token and stores the next"
		if withAT {
			name += " and its access token"
		}
		tests = append(tests, subtest{name, func(t *testing.T, f *fixture) {
			g, rt1 := issue(t, f)
			rt2 := newRefresh("rt-2", g, exp)
			var at2 *store.AccessToken
			if withAT {
				at2 = newAccess("at-2", g, t0.Add(time.Hour))
			}
			old, err := f.s.RotateRefreshToken(f.ctx, "rt-1", rt2, at2)
			ok(t, err, "RotateRefreshToken")
			same(t, refreshWithoutUsed(old), rt1, "old token returned")
			got, err := f.s.GetRefreshToken(f.ctx, "rt-2")
			ok(t, err, "GetRefreshToken next")
			same(t, got, rt2, "next token")
			if withAT {
				gotAT, err := f.s.GetAccessToken(f.ctx, "at-2")
				ok(t, err, "GetAccessToken issued with the rotation")
				same(t, gotAT, at2, "access token issued with the rotation")
			}
			// The chain goes on from the new token.
			rt3 := newRefresh("rt-3", g, exp)
			old, err = f.s.RotateRefreshToken(f.ctx, "rt-2", rt3, nil)
			ok(t, err, "rotating the next token")
			same(t, refreshWithoutUsed(old), rt2, "old token of the second rotation")
			_, err = f.s.GetRefreshToken(f.ctx, "rt-3")
			ok(t, err, "GetRefreshToken after second rotation")
		}})
	}
	runAll(t, o, tests)
}

// --- revocation ---

// family is a grant and every token digest issued under it.
type family struct {
	grant   *store.Grant
	refresh []string
	access  []string
}

// issueFamily stores a grant with a refresh token, rotates it once (with a
// new access token) and adds one more access token with PutAccessToken.
func issueFamily(t *testing.T, f *fixture, id, subject, clientID string) family {
	t.Helper()
	exp := t0.Add(24 * time.Hour)
	g := newGrant(id, subject, clientID, exp)
	fam := family{
		grant:   g,
		refresh: []string{id + "/rt-1", id + "/rt-2"},
		access:  []string{id + "/at-1", id + "/at-2", id + "/at-3"},
	}
	ok(t, f.s.IssueGrant(f.ctx, g, newRefresh(fam.refresh[0], g, exp), newAccess(fam.access[0], g, t0.Add(time.Hour))), "IssueGrant "+id)
	_, err := f.s.RotateRefreshToken(f.ctx, fam.refresh[0], newRefresh(fam.refresh[1], g, exp), newAccess(fam.access[1], g, t0.Add(time.Hour)))
	ok(t, err, "RotateRefreshToken "+id)
	ok(t, f.s.PutAccessToken(f.ctx, newAccess(fam.access[2], g, t0.Add(time.Hour))), "PutAccessToken "+id)
	return fam
}

// gone checks the grant and every token of fam are ErrNotFound. The tokens
// must be deleted, not merely hidden behind the missing grant: gone stores
// the grant again, checks the tokens stay ErrNotFound, and revokes it again.
func (fam family) gone(t *testing.T, f *fixture) {
	t.Helper()
	_, err := f.s.GetGrant(f.ctx, fam.grant.ID)
	is(t, err, store.ErrNotFound, "GetGrant of revoked "+fam.grant.ID)
	fam.tokensGone(t, f, "of revoked grant")
	ok(t, f.s.PutGrant(f.ctx, fam.grant), "PutGrant with the revoked grant's id")
	fam.tokensGone(t, f, "after a grant with the revoked id was stored again")
	ok(t, f.s.RevokeGrant(f.ctx, fam.grant.ID), "RevokeGrant of the re-stored grant")
}

func (fam family) tokensGone(t *testing.T, f *fixture, when string) {
	t.Helper()
	for _, d := range fam.refresh {
		_, err := f.s.GetRefreshToken(f.ctx, d)
		is(t, err, store.ErrNotFound, "GetRefreshToken "+d+" "+when)
	}
	for _, d := range fam.access {
		_, err := f.s.GetAccessToken(f.ctx, d)
		is(t, err, store.ErrNotFound, "GetAccessToken "+d+" "+when)
	}
	last := fam.refresh[len(fam.refresh)-1]
	_, err := f.s.RotateRefreshToken(f.ctx, last, newRefresh(last+"/next", fam.grant, t0.Add(24*time.Hour)), nil)
	is(t, err, store.ErrNotFound, "RotateRefreshToken "+last+" "+when)
}

// intact checks the grant and its tokens still read as issued: the grant,
// the current refresh token, the rotated one as ErrAlreadyUsed and every
// access token.
func (fam family) intact(t *testing.T, f *fixture) {
	t.Helper()
	got, err := f.s.GetGrant(f.ctx, fam.grant.ID)
	ok(t, err, "GetGrant "+fam.grant.ID)
	same(t, got, fam.grant, "untouched grant")
	_, err = f.s.GetRefreshToken(f.ctx, fam.refresh[0])
	is(t, err, store.ErrAlreadyUsed, "GetRefreshToken of rotated "+fam.refresh[0])
	_, err = f.s.GetRefreshToken(f.ctx, fam.refresh[1])
	ok(t, err, "GetRefreshToken "+fam.refresh[1])
	for _, d := range fam.access {
		_, err := f.s.GetAccessToken(f.ctx, d)
		ok(t, err, "GetAccessToken "+d)
	}
}

func testRevokeGrant(t *testing.T, o opener) {
	runAll(t, o, []subtest{
		{"grant, refresh tokens (rotated too) and opaque access tokens are ErrNotFound afterwards", func(t *testing.T, f *fixture) {
			fam := issueFamily(t, f, "grant-1", "alice", "app")
			fam.intact(t, f)
			ok(t, f.s.RevokeGrant(f.ctx, "grant-1"), "RevokeGrant")
			fam.gone(t, f)
		}},
		{"other grants keep their tokens, even when one id prefixes the other", func(t *testing.T, f *fixture) {
			victim := issueFamily(t, f, "grant-1", "alice", "app")
			others := []family{
				issueFamily(t, f, "grant-10", "alice", "app"),
				issueFamily(t, f, "grant", "alice", "app"),
				issueFamily(t, f, "grant-2", "bob", "app"),
			}
			ok(t, f.s.RevokeGrant(f.ctx, "grant-1"), "RevokeGrant")
			victim.gone(t, f)
			for _, other := range others {
				other.intact(t, f)
			}
			// Revoking a neighbour must not have damaged what the others
			// need to be revoked completely later.
			for _, other := range others {
				ok(t, f.s.RevokeGrant(f.ctx, other.grant.ID), "RevokeGrant "+other.grant.ID)
				other.gone(t, f)
			}
		}},
		{"revoking an unknown grant is not an error", func(t *testing.T, f *fixture) {
			fam := issueFamily(t, f, "grant-1", "alice", "app")
			ok(t, f.s.RevokeGrant(f.ctx, "grant-404"), "RevokeGrant unknown")
			fam.intact(t, f)
		}},
		{"a grant revoked before it is issued is refused with ErrRevoked", func(t *testing.T, f *fixture) {
			// A replayed code revokes the grant its first redemption is
			// still creating: that redemption must then fail.
			ok(t, f.s.RevokeGrant(f.ctx, "grant-race"), "RevokeGrant before issue")
			g := newGrant("grant-race", "alice", "app", t0.Add(time.Hour))
			rt := newRefresh("rt-race", g, t0.Add(time.Hour))
			if err := f.s.IssueGrant(f.ctx, g, rt, nil); !errors.Is(err, store.ErrRevoked) {
				t.Fatalf("IssueGrant of a revoked grant id: err = %v, want ErrRevoked", err)
			}
			if _, err := f.s.GetRefreshToken(f.ctx, "rt-race"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("refresh token of the refused grant: err = %v, want ErrNotFound", err)
			}
		}},
		{"revoking twice is not an error", func(t *testing.T, f *fixture) {
			fam := issueFamily(t, f, "grant-1", "alice", "app")
			ok(t, f.s.RevokeGrant(f.ctx, "grant-1"), "first RevokeGrant")
			ok(t, f.s.RevokeGrant(f.ctx, "grant-1"), "second RevokeGrant")
			fam.gone(t, f)
		}},
	})
}

func testRevokeGrantsOfSubject(t *testing.T, o opener) {
	// Every case starts from the same four grants.
	setup := []struct{ id, subject, client string }{
		{"alice-app1-a", "alice", "app1"},
		{"alice-app1-b", "alice", "app1"},
		{"alice-app2", "alice", "app2"},
		{"bob-app1", "bob", "app1"},
	}
	cases := []struct {
		name            string
		subject, client string
		want            int
		revoked         []string
	}{
		{"subject with one client revokes only those grants", "alice", "app1", 2, []string{"alice-app1-a", "alice-app1-b"}},
		{"subject with empty client revokes all of the subject's grants", "alice", "", 3, []string{"alice-app1-a", "alice-app1-b", "alice-app2"}},
		{"other subject with the same client keeps alice's grants", "bob", "app1", 1, []string{"bob-app1"}},
		{"client the subject has no grant with revokes nothing", "bob", "app2", 0, nil},
		{"unknown subject revokes nothing", "carol", "", 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := o.fresh(t)
			fams := map[string]family{}
			for _, s := range setup {
				fams[s.id] = issueFamily(t, f, s.id, s.subject, s.client)
			}
			n, err := f.s.RevokeGrantsOfSubject(f.ctx, tc.subject, tc.client)
			ok(t, err, "RevokeGrantsOfSubject")
			if n != tc.want {
				t.Errorf("RevokeGrantsOfSubject(%q, %q) = %d, want %d", tc.subject, tc.client, n, tc.want)
			}
			revoked := map[string]bool{}
			for _, id := range tc.revoked {
				revoked[id] = true
			}
			for _, s := range setup {
				if revoked[s.id] {
					fams[s.id].gone(t, f)
				} else {
					fams[s.id].intact(t, f)
				}
			}
		})
	}
}

// testDeleteClientRevokesItsGrants: deleting a client revokes the grants
// issued to it, and only those, so a client recreated under the same id
// inherits no refresh token.
func testDeleteClientRevokesItsGrants(t *testing.T, o opener) {
	f := o.fresh(t)
	ok(t, f.s.PutClient(f.ctx, &store.Client{ID: "app1"}), "PutClient")
	mine := issueFamily(t, f, "alice-app1", "alice", "app1")
	other := issueFamily(t, f, "alice-app2", "alice", "app2")
	ok(t, f.s.DeleteClient(f.ctx, "app1"), "DeleteClient")
	_, err := f.s.GetClient(f.ctx, "app1")
	is(t, err, store.ErrNotFound, "GetClient after delete")
	mine.gone(t, f)
	other.intact(t, f)
	ok(t, f.s.DeleteClient(f.ctx, "never-there"), "DeleteClient unknown")
}

// --- access tokens ---

func testAccessTokens(t *testing.T, o opener) {
	runAll(t, o, []subtest{
		{"GetAccessToken of an unknown digest is ErrNotFound", func(t *testing.T, f *fixture) {
			_, err := f.s.GetAccessToken(f.ctx, "at-404")
			is(t, err, store.ErrNotFound, "GetAccessToken unknown")
		}},
		{"DeleteAccessToken makes it ErrNotFound", func(t *testing.T, f *fixture) {
			g := newGrant("grant-1", "alice", "app", t0.Add(24*time.Hour))
			ok(t, f.s.IssueGrant(f.ctx, g, nil, newAccess("at-1", g, t0.Add(time.Hour))), "IssueGrant")
			ok(t, f.s.PutAccessToken(f.ctx, newAccess("at-cc", nil, t0.Add(time.Hour))), "PutAccessToken")
			for _, d := range []string{"at-1", "at-cc"} {
				ok(t, f.s.DeleteAccessToken(f.ctx, d), "DeleteAccessToken "+d)
				_, err := f.s.GetAccessToken(f.ctx, d)
				is(t, err, store.ErrNotFound, "GetAccessToken after delete "+d)
			}
			_, err := f.s.GetGrant(f.ctx, "grant-1")
			ok(t, err, "grant survives deleting its access token")
		}},
		{"token whose grant expired is ErrNotFound before the token expires", func(t *testing.T, f *fixture) {
			g := newGrant("grant-1", "alice", "app", t0.Add(time.Hour))
			at := newAccess("at-1", g, t0.Add(2*time.Hour))
			ok(t, f.s.IssueGrant(f.ctx, g, nil, at), "IssueGrant")
			got, err := f.s.GetAccessToken(f.ctx, "at-1")
			ok(t, err, "GetAccessToken while the grant is live")
			same(t, got, at, "access token")
			f.clk.Set(t0.Add(90 * time.Minute))
			_, err = f.s.GetAccessToken(f.ctx, "at-1")
			is(t, err, store.ErrNotFound, "GetAccessToken after the grant expired")
		}},
		{"token whose grant was never stored is ErrNotFound", func(t *testing.T, f *fixture) {
			g := newGrant("grant-ghost", "alice", "app", t0.Add(time.Hour))
			ok(t, f.s.PutAccessToken(f.ctx, newAccess("at-1", g, t0.Add(time.Hour))), "PutAccessToken")
			_, err := f.s.GetAccessToken(f.ctx, "at-1")
			is(t, err, store.ErrNotFound, "GetAccessToken")
		}},
		{"the DPoP key binding (JKT) of a token without a grant is kept", func(t *testing.T, f *fixture) {
			cc := newAccess("at-cc", nil, t0.Add(time.Hour))
			cc.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
			ok(t, f.s.PutAccessToken(f.ctx, cc), "PutAccessToken")
			got, err := f.s.GetAccessToken(f.ctx, "at-cc")
			ok(t, err, "GetAccessToken")
			same(t, got, cc, "bound client credentials token")
		}},
		{"client credentials token (empty GrantID) is independent of grants", func(t *testing.T, f *fixture) {
			cc := newAccess("at-cc", nil, t0.Add(2*time.Hour))
			ok(t, f.s.PutAccessToken(f.ctx, cc), "PutAccessToken")
			g := newGrant("grant-1", cc.Subject, cc.ClientID, t0.Add(time.Hour))
			ok(t, f.s.IssueGrant(f.ctx, g, nil, newAccess("at-1", g, t0.Add(time.Hour))), "IssueGrant")
			ok(t, f.s.RevokeGrant(f.ctx, "grant-1"), "RevokeGrant")
			ok(t, f.s.RevokeGrant(f.ctx, ""), "RevokeGrant of the empty id")
			_, err := f.s.RevokeGrantsOfSubject(f.ctx, cc.Subject, "")
			ok(t, err, "RevokeGrantsOfSubject")
			f.clk.Set(t0.Add(90 * time.Minute)) // past every grant's expiry
			got, err := f.s.GetAccessToken(f.ctx, "at-cc")
			ok(t, err, "GetAccessToken")
			same(t, got, cc, "client credentials token")
		}},
	})
}

// --- revoked JTIs ---

func testRevokedJTIs(t *testing.T, o opener) {
	cases := []struct {
		name    string
		revoke  []string
		jti     string
		revoked bool
	}{
		{"revoked JTI is reported revoked", []string{"jti-1"}, "jti-1", true},
		{"never revoked JTI is not revoked", nil, "jti-1", false},
		{"revoking another JTI does not revoke this one", []string{"jti-10", "jti-"}, "jti-1", false},
		{"each of several revoked JTIs is revoked", []string{"jti-1", "jti-2", "jti-3"}, "jti-2", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := o.fresh(t)
			for _, j := range tc.revoke {
				ok(t, f.s.RevokeJTI(f.ctx, j, t0.Add(time.Hour)), "RevokeJTI "+j)
			}
			got, err := f.s.IsJTIRevoked(f.ctx, tc.jti)
			ok(t, err, "IsJTIRevoked")
			if got != tc.revoked {
				t.Fatalf("IsJTIRevoked(%q) = %v, want %v", tc.jti, got, tc.revoked)
			}
		})
	}
}

// --- consents ---

func testConsents(t *testing.T, o opener) {
	t.Run("Covers", func(t *testing.T) {
		f := o.fresh(t)
		ok(t, f.s.PutConsent(f.ctx, newConsent("alice", "app", []string{"openid", "profile", "email"}, time.Time{})), "PutConsent")
		c, err := f.s.GetConsent(f.ctx, "alice", "app")
		ok(t, err, "GetConsent")
		cases := []struct {
			name   string
			scopes []string
			want   bool
		}{
			{"no scopes", nil, true},
			{"one granted scope", []string{"openid"}, true},
			{"every granted scope in another order", []string{"email", "openid", "profile"}, true},
			{"a granted scope twice", []string{"profile", "profile"}, true},
			{"one scope never granted", []string{"offline_access"}, false},
			{"granted scopes plus one more", []string{"openid", "profile", "offline_access"}, false},
			{"scope differing only in case", []string{"OpenID"}, false},
			{"prefix of a granted scope", []string{"open"}, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if got := c.Covers(tc.scopes); got != tc.want {
					t.Fatalf("Covers(%q) of %q = %v, want %v", tc.scopes, c.Scopes, got, tc.want)
				}
			})
		}
	})
	// Pairs chosen so that keys made by plain concatenation would collide
	// ("al"+"iceapp1" = "alice"+"app1") or share prefixes.
	stored := []*store.Consent{
		newConsent("alice", "app1", []string{"openid"}, time.Time{}),
		newConsent("alice", "app10", []string{"openid", "profile"}, time.Time{}),
		newConsent("alice1", "app1", []string{"email"}, time.Time{}),
		newConsent("al", "iceapp1", []string{"address"}, time.Time{}),
		newConsent("bob", "app1", []string{"openid", "email"}, time.Time{}),
	}
	putAll := func(t *testing.T, f *fixture) {
		t.Helper()
		for _, c := range stored {
			ok(t, f.s.PutConsent(f.ctx, c), "PutConsent "+c.Subject+"/"+c.ClientID)
		}
	}
	runAll(t, o, []subtest{
		{"GetConsent returns each (subject, client) pair's own consent", func(t *testing.T, f *fixture) {
			putAll(t, f)
			for _, want := range stored {
				got, err := f.s.GetConsent(f.ctx, want.Subject, want.ClientID)
				ok(t, err, "GetConsent "+want.Subject+"/"+want.ClientID)
				same(t, got, want, "consent of "+want.Subject+"/"+want.ClientID)
			}
		}},
		{"GetConsent of a pair never stored is ErrNotFound", func(t *testing.T, f *fixture) {
			putAll(t, f)
			for _, p := range [][2]string{{"bob", "app10"}, {"alice", "app2"}, {"carol", "app1"}, {"alice1", "app10"}, {"alic", "eapp1"}, {"aliceapp1", ""}, {"", "aliceapp1"}, {"", ""}} {
				_, err := f.s.GetConsent(f.ctx, p[0], p[1])
				is(t, err, store.ErrNotFound, "GetConsent "+p[0]+"/"+p[1])
			}
		}},
		{"PutConsent for the same pair replaces it", func(t *testing.T, f *fixture) {
			putAll(t, f)
			want := newConsent("alice", "app1", []string{"openid", "offline_access"}, t0.Add(time.Hour))
			ok(t, f.s.PutConsent(f.ctx, want), "PutConsent again")
			got, err := f.s.GetConsent(f.ctx, "alice", "app1")
			ok(t, err, "GetConsent")
			same(t, got, want, "replaced consent")
			other, err := f.s.GetConsent(f.ctx, "alice", "app10")
			ok(t, err, "GetConsent of another client")
			same(t, other, stored[1], "other client's consent")
		}},
		{"DeleteConsent removes only that pair", func(t *testing.T, f *fixture) {
			putAll(t, f)
			ok(t, f.s.DeleteConsent(f.ctx, "alice", "app1"), "DeleteConsent")
			_, err := f.s.GetConsent(f.ctx, "alice", "app1")
			is(t, err, store.ErrNotFound, "GetConsent after delete")
			for _, want := range stored[1:] {
				got, err := f.s.GetConsent(f.ctx, want.Subject, want.ClientID)
				ok(t, err, "GetConsent "+want.Subject+"/"+want.ClientID)
				same(t, got, want, "remaining consent")
			}
		}},
		{"consent without ExpiresAt never expires", func(t *testing.T, f *fixture) {
			putAll(t, f)
			f.clk.Set(t0.AddDate(50, 0, 0))
			_, err := f.s.GetConsent(f.ctx, "alice", "app1")
			ok(t, err, "GetConsent 50 years later")
		}},
	})
}

// --- sessions, keys ---

func testSessions(t *testing.T, o opener) {
	runAll(t, o, []subtest{
		{"PutSession then GetSession returns the session", func(t *testing.T, f *fixture) {
			want := newSession("sess-1", t0.Add(8*time.Hour))
			ok(t, f.s.PutSession(f.ctx, want), "PutSession")
			got, err := f.s.GetSession(f.ctx, "sess-1")
			ok(t, err, "GetSession")
			same(t, got, want, "session")
		}},
		{"GetSession of an unknown id is ErrNotFound", func(t *testing.T, f *fixture) {
			_, err := f.s.GetSession(f.ctx, "sess-404")
			is(t, err, store.ErrNotFound, "GetSession unknown")
		}},
		{"DeleteSession makes it ErrNotFound and keeps the others", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutSession(f.ctx, newSession("sess-1", t0.Add(8*time.Hour))), "PutSession 1")
			other := newSession("sess-2", t0.Add(8*time.Hour))
			ok(t, f.s.PutSession(f.ctx, other), "PutSession 2")
			ok(t, f.s.DeleteSession(f.ctx, "sess-1"), "DeleteSession")
			_, err := f.s.GetSession(f.ctx, "sess-1")
			is(t, err, store.ErrNotFound, "GetSession after delete")
			got, err := f.s.GetSession(f.ctx, "sess-2")
			ok(t, err, "GetSession other")
			same(t, got, other, "other session")
		}},
	})
}

func testKeys(t *testing.T, o opener) {
	keyByID := func(t *testing.T, f *fixture) map[string]*store.Key {
		t.Helper()
		keys, err := f.s.ListKeys(f.ctx)
		ok(t, err, "ListKeys")
		out := map[string]*store.Key{}
		for _, k := range keys {
			out[k.ID] = k
		}
		if len(out) != len(keys) {
			t.Fatalf("ListKeys returned duplicates: %s", show(keys))
		}
		return out
	}
	runAll(t, o, []subtest{
		{"ListKeys of an empty store is empty", func(t *testing.T, f *fixture) {
			if keys := keyByID(t, f); len(keys) != 0 {
				t.Fatalf("ListKeys = %s, want none", show(keys))
			}
		}},
		{"ListKeys returns every key with its private JWK", func(t *testing.T, f *fixture) {
			a, b := newKey("kid-1", t0.Add(48*time.Hour)), newKey("kid-2", t0.Add(72*time.Hour))
			ok(t, f.s.PutKey(f.ctx, a), "PutKey 1")
			ok(t, f.s.PutKey(f.ctx, b), "PutKey 2")
			keys := keyByID(t, f)
			if len(keys) != 2 {
				t.Fatalf("ListKeys returned %d keys, want 2", len(keys))
			}
			same(t, keys["kid-1"], a, "key 1")
			same(t, keys["kid-2"], b, "key 2")
		}},
		{"retired key (past ActiveUntil, before ExpiresAt) is still listed", func(t *testing.T, f *fixture) {
			k := newKey("kid-1", t0.Add(48*time.Hour))
			ok(t, f.s.PutKey(f.ctx, k), "PutKey")
			f.clk.Set(k.ActiveUntil.Add(time.Hour))
			if _, found := keyByID(t, f)["kid-1"]; !found {
				t.Fatal("retired key missing from ListKeys")
			}
		}},
		{"DeleteKey removes only that key", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutKey(f.ctx, newKey("kid-1", t0.Add(48*time.Hour))), "PutKey 1")
			b := newKey("kid-2", t0.Add(48*time.Hour))
			ok(t, f.s.PutKey(f.ctx, b), "PutKey 2")
			ok(t, f.s.DeleteKey(f.ctx, "kid-1"), "DeleteKey")
			keys := keyByID(t, f)
			if len(keys) != 1 {
				t.Fatalf("ListKeys after delete = %s, want only kid-2", show(keys))
			}
			same(t, keys["kid-2"], b, "remaining key")
		}},
	})
}

// --- secrets ---

func testSecrets(t *testing.T, o opener) {
	// creator returns a create func handing out value and counting calls.
	creator := func(value string, calls *atomic.Int32) func() ([]byte, error) {
		return func() ([]byte, error) {
			calls.Add(1)
			return []byte(value), nil
		}
	}
	runAll(t, o, []subtest{
		{"first call creates and returns the secret", func(t *testing.T, f *fixture) {
			var calls atomic.Int32
			got, err := f.s.GetOrCreateSecret(f.ctx, "cookie", creator("s3cret-one", &calls))
			ok(t, err, "GetOrCreateSecret")
			if string(got) != "s3cret-one" {
				t.Fatalf("secret = %q, want %q", got, "s3cret-one")
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("create called %d times, want 1", n)
			}
		}},
		{"second call returns the same bytes without calling create", func(t *testing.T, f *fixture) {
			var calls atomic.Int32
			first, err := f.s.GetOrCreateSecret(f.ctx, "cookie", creator("s3cret-one", &calls))
			ok(t, err, "first GetOrCreateSecret")
			second, err := f.s.GetOrCreateSecret(f.ctx, "cookie", func() ([]byte, error) {
				t.Error("create called for an existing secret")
				return []byte("s3cret-two"), nil
			})
			ok(t, err, "second GetOrCreateSecret")
			if !bytes.Equal(first, second) {
				t.Fatalf("second call = %q, want %q", second, first)
			}
		}},
		{"secrets under different names are independent", func(t *testing.T, f *fixture) {
			var calls atomic.Int32
			a, err := f.s.GetOrCreateSecret(f.ctx, "cookie-hash", creator("value-a", &calls))
			ok(t, err, "GetOrCreateSecret a")
			b, err := f.s.GetOrCreateSecret(f.ctx, "cookie-block", creator("value-b", &calls))
			ok(t, err, "GetOrCreateSecret b")
			if string(a) != "value-a" || string(b) != "value-b" {
				t.Fatalf("secrets = %q, %q; want value-a, value-b", a, b)
			}
		}},
		{"error from create is returned and nothing is stored", func(t *testing.T, f *fixture) {
			boom := errors.New("entropy exhausted")
			_, err := f.s.GetOrCreateSecret(f.ctx, "cookie", func() ([]byte, error) { return nil, boom })
			is(t, err, boom, "GetOrCreateSecret with failing create")
			var calls atomic.Int32
			got, err := f.s.GetOrCreateSecret(f.ctx, "cookie", creator("late", &calls))
			ok(t, err, "GetOrCreateSecret after failure")
			if string(got) != "late" || calls.Load() != 1 {
				t.Fatalf("after a failed create: secret %q, create called %d times; want %q, once", got, calls.Load(), "late")
			}
		}},
		{"concurrent callers all get one identical value", func(t *testing.T, f *fixture) {
			got := make([][]byte, racers)
			errs := make([]error, racers)
			race(racers, func(i int) {
				got[i], errs[i] = f.s.GetOrCreateSecret(f.ctx, "cookie", func() ([]byte, error) {
					return fmt.Appendf(nil, "candidate-%02d", i), nil
				})
			})
			for i, err := range errs {
				ok(t, err, fmt.Sprintf("racer %d", i))
			}
			for i := range got {
				if !bytes.Equal(got[i], got[0]) {
					t.Fatalf("racer %d got %q, racer 0 got %q", i, got[i], got[0])
				}
			}
			again, err := f.s.GetOrCreateSecret(f.ctx, "cookie", func() ([]byte, error) {
				t.Error("create called after the race stored a secret")
				return nil, nil
			})
			ok(t, err, "GetOrCreateSecret after the race")
			if !bytes.Equal(again, got[0]) {
				t.Fatalf("stored secret %q differs from what the racers got %q", again, got[0])
			}
		}},
	})
}

// --- pushed authorization requests ---

func newPushed(digest string, exp time.Time) *store.PushedRequest {
	return &store.PushedRequest{Digest: digest, ClientID: "webapp", Params: "response_type=code&scope=openid",
		CreatedAt: t0, ExpiresAt: exp}
}

func testPushedRequests(t *testing.T, o opener) {
	exp := t0.Add(90 * time.Second)
	runAll(t, o, []subtest{
		{"TakePushedRequest returns the request once", func(t *testing.T, f *fixture) {
			want := newPushed("par-1", exp)
			ok(t, f.s.PutPushedRequest(f.ctx, want), "PutPushedRequest")
			got, err := f.s.TakePushedRequest(f.ctx, "par-1")
			ok(t, err, "TakePushedRequest")
			same(t, got, want, "taken request")
			_, err = f.s.TakePushedRequest(f.ctx, "par-1")
			is(t, err, store.ErrNotFound, "second TakePushedRequest")
		}},
		{"PutPushedRequest of an existing digest is ErrConflict and keeps the original", func(t *testing.T, f *fixture) {
			want := newPushed("par-1", exp)
			ok(t, f.s.PutPushedRequest(f.ctx, want), "PutPushedRequest")
			other := newPushed("par-1", exp)
			other.ClientID = "evil"
			is(t, f.s.PutPushedRequest(f.ctx, other), store.ErrConflict, "PutPushedRequest again")
			got, err := f.s.TakePushedRequest(f.ctx, "par-1")
			ok(t, err, "TakePushedRequest")
			same(t, got, want, "request after conflicting put")
		}},
		{"an expired pushed request is ErrNotFound", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutPushedRequest(f.ctx, newPushed("par-1", exp)), "PutPushedRequest")
			f.clk.Set(exp)
			_, err := f.s.TakePushedRequest(f.ctx, "par-1")
			is(t, err, store.ErrNotFound, "TakePushedRequest at expiry")
		}},
		{"concurrent TakePushedRequest of one digest: exactly one succeeds", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutPushedRequest(f.ctx, newPushed("par-1", exp)), "PutPushedRequest")
			errs := make([]error, racers)
			race(racers, func(i int) { _, errs[i] = f.s.TakePushedRequest(f.ctx, "par-1") })
			soleWinner(t, errs, store.ErrNotFound, "TakePushedRequest calls")
		}},
	})
}
