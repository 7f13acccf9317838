package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestSafeReturnKeepsRedirectsOnSite checks safeReturn on raw values, as a
// last line of defence whatever reaches it: the Location that http.Redirect
// finally writes (it cleans the path) must stay on this site once a browser
// parses it (backslash as slash, tab and newline dropped).
func TestSafeReturnKeepsRedirectsOnSite(t *testing.T) {
	cases := []string{
		"//evil.example",
		"///evil.example",
		"/\\evil.example",
		"/./\\evil.example",
		"/../\\evil.example",
		"/.\\\\evil.example",
		"/a/..\\/evil.example",
		"/\t/evil.example",
		"/./\t/evil.example",
		"/\n/evil.example",
		"/\r\nLocation: https://evil.example",
		"https://evil.example",
		"javascript:alert(1)",
		"evil.example",
		"",
		"/.//evil.example",
		"/%2F%2Fevil.example",
	}
	for _, in := range cases {
		t.Run(in, func(t *testing.T) {
			rec := httptest.NewRecorder()
			http.Redirect(rec, httptest.NewRequest(http.MethodGet, "https://app.example/oauth2/callback", nil), safeReturn(in), http.StatusSeeOther)
			loc := rec.Header().Get("Location")
			browser := strings.Map(func(r rune) rune {
				switch r {
				case '\t', '\n', '\r':
					return -1
				case '\\':
					return '/'
				}
				return r
			}, loc)
			u, err := url.Parse(browser)
			if err != nil {
				t.Fatalf("Location %q: %v", loc, err)
			}
			if got := (&url.URL{Scheme: "https", Host: "app.example", Path: "/"}).ResolveReference(u); got.Host != "app.example" || got.Scheme != "https" {
				t.Fatalf("safeReturn(%q) = %q: Location %q takes the browser to %s", in, safeReturn(in), loc, got)
			}
		})
	}
}

func TestSafeReturnKeepsLocalPaths(t *testing.T) {
	for _, p := range []string{"/", "/reports", "/a/b?x=1&y=%2F%2Fz", "/%5Cpath", "/caf%C3%A9#top"} {
		if got := safeReturn(p); got != p {
			t.Errorf("safeReturn(%q) = %q", p, got)
		}
	}
}
