package proxy_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/floodtest"
	"github.com/portcullis-gw/portcullis/proxy"
)

// TestFloodUniqueCookiesAtTheGateway: per round, unique garbage session
// and login cookies on an API request and on a navigation (which starts a
// login: a new login cookie, nothing kept in memory), a callback with that
// fresh, valid login cookie (its state is remembered as used: the one
// structure a stranger can feed), and a callback with a garbage state and
// cookie. The used states stay at their cap; the garbage leaves nothing.
func TestFloodUniqueCookiesAtTheGateway(t *testing.T) {
	rounds := floodtest.N(20_000, 12_000)
	e := newEnv(t)
	b := e.browser()
	garbage := func(i int, name string) *http.Cookie {
		return &http.Cookie{Name: name, Value: fmt.Sprintf("MTc%s%08d", strings.Repeat("A", 200), i)}
	}
	statuses := map[string]int{}
	peak := floodtest.Measure(rounds, func(i int) {
		api := newRequest(http.MethodGet, fmt.Sprintf("/api/%d", i), nil)
		api.AddCookie(garbage(i, "portcullis_session"))
		api.AddCookie(garbage(i, fmt.Sprintf("portcullis_session_login_%012x", i)))
		statuses[fmt.Sprint("api ", b.doBare(api).StatusCode)]++

		nav := navigate(fmt.Sprintf("/page/%d", i))
		nav.AddCookie(garbage(i, "portcullis_session"))
		rec := b.doBare(nav)
		statuses[fmt.Sprint("navigation ", rec.StatusCode)]++
		loc, err := url.Parse(rec.Header.Get("Location"))
		if err != nil || loc.Query().Get("state") == "" {
			t.Fatalf("round %d: navigation answered %d, Location %q", i, rec.StatusCode, rec.Header.Get("Location"))
		}
		cb := navigate(callbackPath + "?error=access_denied&state=" + url.QueryEscape(loc.Query().Get("state")))
		for _, c := range rec.Cookies() {
			if c.MaxAge > 0 {
				cb.AddCookie(c)
			}
		}
		statuses[fmt.Sprint("callback ", b.doBare(cb).StatusCode)]++

		forged := navigate(fmt.Sprintf("%s?code=x&state=forged-%d", callbackPath, i))
		forged.AddCookie(garbage(i, fmt.Sprintf("portcullis_session_login_%012x", i)))
		statuses[fmt.Sprint("forged callback ", b.doBare(forged).StatusCode)]++
	})
	t.Logf("answers: %v; %d login states remembered as used (cap %d)", statuses, e.gw.UsedStates(), proxy.MaxSeenTokens)
	want := map[string]int{"api 401": rounds, "navigation 302": rounds, "callback 403": rounds, "forged callback 400": rounds}
	for k, v := range want {
		if statuses[k] != v {
			t.Errorf("answers %v, want %v", statuses, want)
			break
		}
	}
	if n := e.gw.UsedStates(); n > proxy.MaxSeenTokens {
		t.Errorf("%d login states remembered, past the cap %d", n, proxy.MaxSeenTokens)
	}
	floodtest.Check(t, "the gateway's login states and cookies", rounds, peak)
}
