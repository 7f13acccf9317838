package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// introspect returns the verified token for an opaque access token, asking
// the issuer (RFC 7662) unless a recent answer is cached. Active answers
// are kept CacheTTL at most and never past the token's exp, inactive ones
// NegativeTTL; concurrent requests with the same token share one call.
func (g *Guard) introspect(ctx context.Context, iss *guardIssuer, raw string, key [32]byte) (*Token, *guardError) {
	if iss.introspector == nil {
		return nil, tokenError("opaque access tokens are not accepted here", nil)
	}
	if tok, gerr, ok := g.cachedIntrospection(key); ok {
		return tok, gerr
	}
	type answer struct {
		tok  *Token
		gerr *guardError
	}
	v, err, _ := g.flight.Do(string(key[:]), func() (any, error) {
		// A call that ended between the cache look-up and here left its
		// answer in the cache.
		if tok, gerr, ok := g.cachedIntrospection(key); ok {
			return answer{tok, gerr}, nil
		}
		// The call serves every request waiting for it: it must not end
		// because the one that started it went away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), introspectionTimeout)
		defer cancel()
		select {
		case g.slots <- struct{}{}:
			defer func() { <-g.slots }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		resp, err := iss.introspector.Introspect(ctx, raw)
		g.metrics.Introspected(err == nil)
		if err != nil {
			return nil, err
		}
		now := g.now()
		tok, gerr := g.introspectedToken(resp, now)
		if gerr != nil {
			g.inactive.put(key, gerr, now.Add(g.cfg.NegativeTTL), now)
			return answer{nil, gerr}, nil
		}
		exp := now.Add(g.cfg.CacheTTL)
		if !tok.Expiry.IsZero() && tok.Expiry.Before(exp) {
			exp = tok.Expiry
		}
		g.introspected.put(key, tok, exp, now)
		return answer{tok, nil}, nil
	})
	if err != nil {
		// The issuer did not answer: the token may well be good, so this
		// is not a 401 that would make the client drop it.
		e := *errUnavailable
		e.reason, e.cause = "introspection failed", err
		return nil, &e
	}
	a := v.(answer)
	return a.tok, a.gerr
}

// cachedIntrospection returns a cached answer for key.
func (g *Guard) cachedIntrospection(key [32]byte) (*Token, *guardError, bool) {
	now := g.now()
	if tok, ok := g.introspected.get(key, now); ok {
		return tok, nil, true
	}
	if gerr, ok := g.inactive.get(key, now); ok {
		return nil, gerr, true
	}
	return nil, nil, false
}

var errInactive = tokenError("the token is not active", nil)

// introspectedToken checks an introspection answer as a JWT's claims
// would be checked: active, an access token, not expired, from the
// issuer, for this audience.
func (g *Guard) introspectedToken(resp map[string]any, now time.Time) (*Token, *guardError) {
	// RFC 7662 §2.2: "active" is REQUIRED; anything but true is inactive.
	if active, _ := resp["active"].(bool); !active {
		return nil, errInactive
	}
	// The embedded server (and others) introspect refresh tokens too: one
	// must not pass as an access token.
	if tt, _ := resp["token_type"].(string); strings.EqualFold(tt, "refresh_token") {
		return nil, tokenError("the token is not an access token", nil)
	}
	var exp time.Time
	if v, ok := resp["exp"]; ok {
		t, ok := numericDate(v)
		if !ok {
			return nil, tokenError("the introspection answer is malformed (exp)", nil)
		}
		if !now.Before(t.Add(g.cfg.Leeway)) {
			return nil, tokenError("the token has expired", nil)
		}
		exp = t
	}
	if v, ok := resp["nbf"]; ok {
		t, ok := numericDate(v)
		if !ok {
			return nil, tokenError("the introspection answer is malformed (nbf)", nil)
		}
		if now.Add(g.cfg.Leeway).Before(t) {
			return nil, tokenError("the token is not valid yet (nbf)", nil)
		}
	}
	if v, ok := resp["iss"]; ok && v != g.cfg.Issuer {
		return nil, tokenError("the token is not from the expected issuer", nil)
	}
	// Without aud in the answer the issuer does not say the token is for
	// this API: an active token minted for another API must not pass.
	if !g.cfg.AnyAudience && !slices.ContainsFunc(stringList(resp["aud"]), func(a string) bool { return slices.Contains(g.cfg.Audiences, a) }) {
		return nil, tokenError("the token is not meant for this resource (aud)", nil)
	}
	return newToken(resp, exp, true)
}

// numericDate reads an RFC 7519 NumericDate from decoded JSON (float64,
// json.Number) or an in-process answer (integers).
func numericDate(v any) (time.Time, bool) {
	var secs float64
	switch n := v.(type) {
	case float64:
		secs = n
	case int64:
		secs = float64(n)
	case int:
		secs = float64(n)
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			return time.Time{}, false
		}
		secs = f
	default:
		return time.Time{}, false
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 || secs > 1<<40 {
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true
}

// httpIntrospector is RFC 7662 over HTTP, the guard authenticating with
// client_secret_basic.
type httpIntrospector struct {
	g        *Guard
	endpoint string
}

func (h *httpIntrospector) Introspect(ctx context.Context, token string) (map[string]any, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if id := h.g.cfg.ClientID; id != "" {
		// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(h.g.cfg.ClientSecret))
	}
	resp, err := h.g.http.Do(req)
	if err != nil {
		// The URL error would repeat the endpoint only; the form (and so the
		// token) is never part of it.
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := decodeJSONResponse(h.endpoint, resp, &out); err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	return out, nil
}
