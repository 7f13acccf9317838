package session

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

// viaJSON is what a session looked like after a round trip through the
// JSON cookie format: the binary format must give back the same.
func viaJSON(t *testing.T, d *Data) *Data {
	t.Helper()
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	out := new(Data)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSession(t *testing.T, got, want *Data) {
	t.Helper()
	if got.ID != want.ID || got.Subject != want.Subject || got.IDToken != want.IDToken || got.AccessToken != want.AccessToken ||
		got.RefreshToken != want.RefreshToken || got.ProviderSID != want.ProviderSID {
		t.Errorf("strings differ:\n got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct {
		name      string
		got, want time.Time
	}{{"TokenExpiry", got.TokenExpiry, want.TokenExpiry}, {"CreatedAt", got.CreatedAt, want.CreatedAt}, {"LastSeen", got.LastSeen, want.LastSeen}} {
		if !tc.got.Equal(tc.want) || tc.got.IsZero() != tc.want.IsZero() {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if !reflect.DeepEqual(got.Claims, want.Claims) {
		t.Errorf("claims = %#v, want %#v", got.Claims, want.Claims)
	}
}

func TestSessionFormatKeepsWhatJSONKept(t *testing.T) {
	full := benchSession(3)
	full.ID = "opaque-id"
	full.Claims["address"] = map[string]any{"country": "NZ", "lines": []any{"1 Queen St", nil, 2.5}}
	full.Claims["weird \"key\"\n"] = "<value> & \u2028"
	cases := map[string]*Data{
		"typical":                  benchSession(0),
		"every field":              full,
		"no claims, no expiry":     {Subject: "bob", CreatedAt: benchNow, LastSeen: benchNow},
		"empty claims map":         {Subject: "bob", Claims: map[string]any{}, CreatedAt: benchNow, LastSeen: benchNow},
		"zero value":               {},
		"local and offset times":   {Subject: "c", CreatedAt: time.Now(), LastSeen: benchNow.In(time.FixedZone("", 5*3600+1800)), TokenExpiry: time.Unix(1, 5)},
		"unicode and empty fields": {Subject: "ünï", IDToken: "", AccessToken: "a", Claims: map[string]any{"n": float64(1e300), "b": false}},
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := d.appendBinary([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if string(b[:6]) != "prefix" || b[6] != dataFormat1 {
				t.Fatalf("appendBinary did not append a format 1 value: % x", b[:8])
			}
			var got Data
			if err := got.decodeBinary(b[6:]); err != nil {
				t.Fatal(err)
			}
			sameSession(t, &got, viaJSON(t, d))
		})
	}
}

func TestCookieStoreRoundTrip(t *testing.T) {
	s := benchCookieStore(t)
	for _, groups := range []int{0, 120} {
		d := benchSession(groups)
		r, n := benchRequest(t, s, d)
		got, err := s.Load(r)
		if err != nil {
			t.Fatalf("%d groups, %d cookies: %v", groups, n, err)
		}
		sameSession(t, got, viaJSON(t, d))
	}
}

// A session cookie written by a version that stored sessions as JSON
// still signs the user in.
func TestCookieStoreReadsJSONSessions(t *testing.T) {
	s := benchCookieStore(t)
	old := benchCookieStore(t)
	for _, c := range old.codec.codecs {
		c.(*securecookie.SecureCookie).SetSerializer(securecookie.JSONEncoder{})
	}
	d := benchSession(0)
	r, _ := benchRequest(t, old, d)
	raw, _ := ReadChunked(r, s.opts)
	var probe map[string]any
	if err := old.codec.Decode(s.opts.Name, raw, &probe); err != nil || probe["sub"] != "alice" {
		t.Fatalf("the old-style cookie is not JSON: %v %v", probe, err)
	}
	got, err := s.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	sameSession(t, got, viaJSON(t, d))
}

// Other values (login state, ids, CSRF tokens) are still JSON, readable by
// the previous version.
func TestCodecKeepsJSONForOtherValues(t *testing.T) {
	c, _ := NewCodec("x", time.Hour, secretA)
	jsonOnly, _ := NewCodec("x", time.Hour, secretA)
	for _, sc := range jsonOnly.codecs {
		sc.(*securecookie.SecureCookie).SetSerializer(securecookie.JSONEncoder{})
	}
	enc, err := c.Encode("n", map[string]string{"state": "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := jsonOnly.Decode("n", enc, &got); err != nil || got["state"] != "s1" {
		t.Fatalf("%v %v", got, err)
	}
}

func TestSessionFormatRefusesMalformedValues(t *testing.T) {
	b, err := benchSession(0).appendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		var d Data
		if err := d.decodeBinary(b[:n]); err == nil {
			t.Fatalf("decoded a value cut to %d of %d bytes", n, len(b))
		}
	}
	var d Data
	if err := d.decodeBinary(append(b[:len(b):len(b)], 0)); err == nil {
		t.Error("decoded a value with a trailing byte")
	}
	bad := append([]byte{2}, b[1:]...)
	if err := d.decodeBinary(bad); err == nil {
		t.Error("decoded an unknown format")
	}
	huge := []byte{dataFormat1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	if err := d.decodeBinary(huge); err == nil {
		t.Error("decoded a field longer than the value")
	}
}

func FuzzSessionFormat(f *testing.F) {
	b, _ := benchSession(0).appendBinary(nil)
	f.Add(b)
	f.Add([]byte{dataFormat1})
	f.Fuzz(func(t *testing.T, src []byte) {
		var d Data
		if d.decodeBinary(src) != nil {
			return
		}
		again, err := d.appendBinary(nil)
		if err != nil {
			return // e.g. a time the binary form holds but cannot re-marshal
		}
		var d2 Data
		if err := d2.decodeBinary(again); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
	})
}

// The request a cookie store writes must still carry the attributes the
// design requires: the format change is inside the encrypted value.
func TestCookieStoreCookieAttributes(t *testing.T) {
	s := benchCookieStore(t)
	rec := httptest.NewRecorder()
	if err := s.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), benchSession(0)); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Name != "__Host-portcullis_session" {
			t.Errorf("cookie %+v", c)
		}
	}
}
