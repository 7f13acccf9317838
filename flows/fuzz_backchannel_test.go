package flows

// Fuzz targets for the endpoints clients call directly (JSON in, JSON
// out) and for the signed JWTs clients send them. Under plain `go test`
// they run their seed corpus; run one for real with
//
//	go test ./flows/ -run '^$' -fuzz '^FuzzBackChannelEndpoints$' -fuzztime 60s
//
// (likewise FuzzUserinfo, FuzzClientAssertion, FuzzCIBASignedParameters,
// FuzzCIBABindingMessage).

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/net/html"
)

// backChannelEndpoint is one endpoint FuzzBackChannelEndpoints posts to:
// the status of its success, what a success must hold, and the error codes
// a client mistake may get.
type backChannelEndpoint struct {
	path   string
	status int
	ok     func(t *testing.T, res *response)
	codes  []string
}

// cibaErrorCodes are the errors of the backchannel authentication
// endpoint (CIBA Core §13 and RFC 6749 §5.2).
var cibaErrorCodes = []string{"invalid_request", "invalid_client", "unauthorized_client", "invalid_scope", "invalid_target",
	"unknown_user_id", "missing_user_code", "invalid_user_code", "invalid_binding_message", "expired_login_hint_token", "access_denied"}

var userCodeShape = regexp.MustCompile(`^[` + userCodeAlphabet + `]{4}-[` + userCodeAlphabet + `]{4}$`)

var backChannelEndpoints = []backChannelEndpoint{
	{PathPAR, http.StatusCreated, func(t *testing.T, res *response) {
		m := checkJSONObject(t, res)
		if uri, _ := m["request_uri"].(string); !strings.HasPrefix(uri, requestURIPrefix) || len(uri) < len(requestURIPrefix)+32 || m["expires_in"] != float64(parTTL/time.Second) {
			t.Fatalf("PAR answer %v", m)
		}
	}, []string{"invalid_request", "invalid_client", "unauthorized_client", "invalid_scope", "invalid_target",
		"unsupported_response_type", "request_not_supported", "request_uri_not_supported"}},
	{PathDeviceAuthorization, http.StatusOK, func(t *testing.T, res *response) {
		m := checkJSONObject(t, res)
		code, _ := m["user_code"].(string)
		dc, _ := m["device_code"].(string)
		if !userCodeShape.MatchString(code) || len(dc) < 32 || m["verification_uri"] != testIssuer+PathDevice ||
			m["verification_uri_complete"] != testIssuer+PathDevice+"?user_code="+code {
			t.Fatalf("device authorization answer %v", m)
		}
	}, []string{"invalid_request", "invalid_client", "unauthorized_client", "invalid_scope", "invalid_target"}},
	{PathIntrospect, http.StatusOK, func(t *testing.T, res *response) {
		m := checkJSONObject(t, res)
		active, ok := m["active"].(bool)
		if !ok || (active && (m["client_id"] == nil || m["exp"] == nil)) || (!active && len(m) != 1) {
			t.Fatalf("introspection answer %v", m)
		}
	}, []string{"invalid_request", "invalid_client", "unauthorized_client"}},
	{PathRevoke, http.StatusOK, func(t *testing.T, res *response) {
		// RFC 7009 §2.2: 200 with nothing to say.
		if res.Body != "" || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("revocation answer %q, headers %v", res.Body, res.Header)
		}
	}, []string{"invalid_request", "invalid_client", "unsupported_token_type"}},
	{PathBackchannelAuthentication, http.StatusOK, func(t *testing.T, res *response) {
		m := checkJSONObject(t, res)
		id, _ := m["auth_req_id"].(string)
		exp, _ := m["expires_in"].(float64)
		if len(id) < 22 || exp <= 0 || exp > MaxCIBARequestTTL.Seconds() {
			t.Fatalf("backchannel authentication answer %v", m)
		}
	}, cibaErrorCodes},
}

// basicHeader is c's HTTP Basic Authorization header.
func basicHeader(c clientCred) string { return c.apply(url.Values{}).Get("Authorization") }

// FuzzBackChannelEndpoints posts arbitrary form bodies, with an arbitrary
// Authorization header, to the client-facing form endpoints other than the
// token endpoint (FuzzTokenEndpoint): PAR, device authorization,
// introspection, revocation and CIBA backchannel authentication, the
// first byte picking which. Property: never a panic or a 5xx; a success
// has the endpoint's shape (a request_uri, a well-formed user code, an
// active flag, an empty 200, an auth_req_id); anything else is a JSON
// error, as application/json, with one of the endpoint's error codes sent
// with that code's status (invalid_client 401, CIBA limits 429, the rest
// 400).
func FuzzBackChannelEndpoints(f *testing.F) {
	e := newFuzzEnv(f)
	setUserCode(f, e, "alice", "4711")
	b := e.newBrowser()
	tr, _ := e.webappTokens(b, "openid offline_access read:items")
	cc := e.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}})
	auth := newAuthRequest(webappID, webappRedirect, "openid profile read:items").Values
	spa := newAuthRequest(spaID, spaRedirect, "openid").Values
	signedReq := signedRequest(f, e, map[string]any{"user_code": "4711", "binding_message": "W4SCT"})
	assertion := signedAssertion(f, e)
	const (
		par = iota
		device
		introspect
		revoke
		bc
	)
	seeds := []struct {
		endpoint    uint8
		body, authz string
	}{
		{par, auth.Encode(), basicHeader(webappBasic)},
		{par, spa.Encode(), ""},
		{par, withValues(auth, "client_id", webappID, "client_secret", webappSecret).Encode(), ""},
		{par, withValues(auth, "request_uri", "urn:x").Encode(), basicHeader(webappBasic)},
		{par, withValues(auth, "redirect_uri", "https://evil.example/cb").Encode(), basicHeader(webappBasic)},
		{par, withValues(auth, "response_type", "token", "code_challenge_method", "plain").Encode(), basicHeader(webappBasic)},
		{par, withValues(auth, "request", "a.b.c", "audience", opaqueAPI).Encode(), basicHeader(webappBasic)},
		{par, "client_id=webapp&client_id=webapp", basicHeader(webappBasic)},
		{device, "client_id=tv&scope=openid+profile+offline_access", ""},
		{device, "scope=openid+read%3Aitems", basicHeader(cliBasic)},
		{device, "scope=openid&audience=https%3A%2F%2Fnowhere.example", basicHeader(cliBasic)},
		{device, "scope=openid", basicHeader(webappBasic)},
		{introspect, "token=" + tr.AccessToken, basicHeader(backendBasic)},
		{introspect, "token=" + tr.RefreshToken + "&token_type_hint=refresh_token", basicHeader(backendBasic)},
		{introspect, "token=" + cc.AccessToken, basicHeader(backendBasic)},
		{introspect, "token=x&client_id=spa", ""},
		{introspect, "token=", basicHeader(backendBasic)},
		{revoke, "token=" + cc.AccessToken, basicHeader(backendBasic)},
		{revoke, "token=x&token_type_hint=id_token", basicHeader(webappBasic)},
		{revoke, "token=" + tr.RefreshToken + "&token_type_hint=refresh_token", basicHeader(otherBasic)},
		{bc, aliceHint("binding_message", "W4SCT").Encode(), basicHeader(cibaPollBasic)},
		{bc, "scope=openid&login_hint=alice&client_notification_token=tok-123", basicHeader(cibaPingBasic)},
		{bc, "scope=openid&login_hint=alice", basicHeader(cibaPushBasic)},
		{bc, "scope=openid&login_hint=nobody&requested_expiry=99999999999999999999", basicHeader(cibaPollBasic)},
		{bc, "scope=openid&id_token_hint=" + tr.IDToken, basicHeader(cibaPollBasic)},
		{bc, "scope=openid&login_hint=alice&login_hint_token=a.b.c", basicHeader(cibaPollBasic)},
		{bc, "scope=openid+read%3Aitems&login_hint=alice&acr_values=" + strings.Repeat("x", 600), basicHeader(cibaPollBasic)},
		{bc, withValues(assertion, "request", signedReq).Encode(), ""},
		{bc, withValues(assertion, "request", signedReq, "scope", "openid").Encode(), ""},
		{bc, "client_id=ciba-public&scope=openid&login_hint=alice", ""},
		{introspect, "%zz", "Basic %%%"},
		{revoke, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.endpoint, s.body, s.authz)
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body, authz string) {
		ep := backChannelEndpoints[int(endpoint)%len(backChannelEndpoints)]
		r := httptest.NewRequest(http.MethodPost, testIssuer+ep.path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		res := serveFuzz(e.handler, r)
		if res.Status == ep.status {
			ep.ok(t, res)
			return
		}
		checkJSONError(t, res, ep.codes...)
	})
}

// userinfoErrorStatus is the status of each userinfo error (RFC 6750 §3.1,
// RFC 9449 §7.1).
var userinfoErrorStatus = map[string]int{
	"invalid_request": http.StatusBadRequest, "invalid_token": http.StatusUnauthorized,
	"insufficient_scope": http.StatusForbidden, "invalid_dpop_proof": http.StatusUnauthorized,
	"use_dpop_nonce": http.StatusUnauthorized,
}

// FuzzUserinfo calls userinfo (GET or POST) with an arbitrary
// Authorization header, DPoP header and form body. Property: never a
// panic or a 5xx; a 200 is alice's claims as JSON, only for a token the
// server issued, and for a DPoP-bound one only under the DPoP scheme with
// a proof; a refusal carries a one-line Bearer or DPoP challenge for this
// realm (nothing from the request may break the header) and, when it
// names an error, the same error as a JSON body with that error's status.
func FuzzUserinfo(f *testing.F) {
	e := newFuzzEnv(f)
	b := e.newBrowser()
	tr, _ := e.webappTokens(b, "openid profile email")
	cc := e.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}})
	key := e.newDPoPKey()
	p := newAuthRequest(webappID, webappRedirect, "openid profile")
	code := b.obtainCode(p, "alice", alicePassword)
	bound := e.dpopTokenOK(webappBasic, codeForm(code, webappRedirect, p.Verifier), key.tokenProof())
	issued := []string{tr.AccessToken, bound.AccessToken, cc.AccessToken}
	seeds := []struct {
		post               bool
		authz, proof, body string
	}{
		{false, "Bearer " + tr.AccessToken, "", ""},
		{true, "", "", "access_token=" + tr.AccessToken},
		{false, "DPoP " + bound.AccessToken, key.proof(http.MethodGet, PathUserinfo, bound.AccessToken), ""},
		{true, "DPoP " + bound.AccessToken, key.proof(http.MethodPost, PathUserinfo, bound.AccessToken), ""},
		{false, "DPoP " + bound.AccessToken, key.proof(http.MethodPost, PathUserinfo, bound.AccessToken), ""},
		{false, "DPoP " + bound.AccessToken, key.proof(http.MethodGet, PathToken, bound.AccessToken), ""},
		{false, "Bearer " + bound.AccessToken, "", ""},
		{false, "DPoP " + bound.AccessToken, "", ""},
		{false, "DPoP " + tr.AccessToken, "a.b.c", ""},
		{false, "Bearer " + cc.AccessToken, "", ""},
		{false, "Bearer " + tr.AccessToken + "x", "", ""},
		{false, "bearer   " + tr.AccessToken + " ", "", ""},
		{true, "Bearer " + tr.AccessToken, "", "access_token=" + bound.AccessToken},
		{false, "Bearer", "", ""},
		{false, "Basic YTpi", "", ""},
		{false, "", "", ""},
		{true, "", "", "access_token=a.b.c&access_token=x"},
	}
	for _, s := range seeds {
		f.Add(s.post, s.authz, s.proof, s.body)
	}
	f.Fuzz(func(t *testing.T, post bool, authz, proof, body string) {
		r := fuzzRequest(post, PathUserinfo, "", body, "")
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if proof != "" {
			r.Header["Dpop"] = []string{proof}
		}
		res := serveFuzz(e.handler, r)
		if res.Status >= 500 {
			t.Fatalf("server error %d: %s", res.Status, res.Body)
		}
		if res.Status == http.StatusOK {
			m := checkJSONObject(t, res)
			// The token the server read: the header's, else the body's.
			scheme, tok, _ := strings.Cut(authz, " ")
			if authz == "" {
				form, _ := url.ParseQuery(body)
				scheme, tok = "Bearer", form.Get("access_token")
			}
			tok = strings.TrimSpace(tok)
			if m["sub"] != "alice" || !slices.Contains(issued, tok) {
				t.Fatalf("userinfo %v for token %q", m, tok)
			}
			if tok == bound.AccessToken && (!strings.EqualFold(scheme, "DPoP") || proof == "") {
				t.Fatalf("a DPoP-bound token was accepted under %q with proof %q", scheme, proof)
			}
			return
		}
		challenges := res.Header.Values("WWW-Authenticate")
		if len(challenges) != 1 {
			t.Fatalf("status %d with challenges %q", res.Status, challenges)
		}
		ch := challenges[0]
		if !strings.HasPrefix(ch, `Bearer realm="`+testIssuer+`"`) && !strings.HasPrefix(ch, `DPoP realm="`+testIssuer+`"`) {
			t.Fatalf("challenge %q", ch)
		}
		if strings.IndexFunc(ch, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 {
			t.Fatalf("challenge with a control character: %q", ch)
		}
		if res.Body == "" {
			if strings.Contains(ch, "error=") || res.Status != http.StatusUnauthorized {
				t.Fatalf("status %d, challenge %q without a body", res.Status, ch)
			}
			return
		}
		m := checkJSONObject(t, res)
		code, _ := m["error"].(string)
		if want, ok := userinfoErrorStatus[code]; !ok || want != res.Status || !strings.Contains(ch, `error="`+code+`"`) {
			t.Fatalf("status %d, error %q, challenge %q", res.Status, code, ch)
		}
	})
}

// FuzzClientAssertion authenticates at the token endpoint
// (client_credentials) with an arbitrary client_assertion (RFC 7523) and
// client_id. Property: never a panic or a 5xx; a client authenticates
// only with an assertion its registered key or secret verifies
// (independently, with go-jose), naming it as sub, and each assertion id
// only once, re-encodings of a used assertion included; the token goes to
// that client; every refusal is a JSON error of the token endpoint.
func FuzzClientAssertion(f *testing.F) {
	e, fx := newAssertionEnv(f)
	claims := func(client string, kv ...any) map[string]any {
		c := e.assertionClaims(client)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	past := e.clock.Now().Add(-time.Hour).Unix()
	seeds := []struct{ clientID, assertion string }{
		{"", fx.pkjwtAssertion(f, e)},
		{pkjwtID, fx.pkjwtAssertion(f, e)},
		{victimID, fx.pkjwtAssertion(f, e)},
		{"", csjwtAssertion(f, e)},
		{"", signAssertion(f, fx.rsaKey, jose.PS256, "r1", claims(pinnedID))},
		{"", signAssertion(f, fx.rsaKey, jose.RS256, "r1", claims(pinnedID))},
		{"", signAssertion(f, fx.attacker, jose.ES256, "k1", claims(pkjwtID))},
		{"", signAssertion(f, fx.key, jose.ES256, "", claims(pkjwtID))},
		{"", noneJWT(f, claims(pkjwtID))},
		{"", signAssertion(f, fx.jwks, jose.HS256, "k1", claims(pkjwtID))},
		{"", signAssertion(f, []byte(csjwtSecret), jose.HS256, "", claims(csjwtID, "exp", past))},
		{"", signAssertion(f, []byte(csjwtSecret), jose.HS256, "", claims(csjwtID, "aud", "https://elsewhere.example"))},
		{"", signAssertion(f, []byte(csjwtSecret), jose.HS256, "", claims(csjwtID, "iss", pkjwtID))},
		{"", signAssertion(f, []byte(csjwtSecret), jose.HS256, "", claims(csjwtID, "jti", nil))},
		{"", signAssertion(f, []byte(csjwtSecret), jose.HS256, "k1", claims(csjwtID))},
		{webappID, csjwtAssertion(f, e)},
		{"nobody", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"},
		{"", "a.b.c"},
		{"", "...."},
		{"", strings.Repeat("A", maxAssertionBytes+1)},
	}
	for _, s := range seeds {
		f.Add(s.clientID, s.assertion)
	}
	// What verifies each client's assertions, as the test registered it.
	verifiers := map[string]struct {
		algs []jose.SignatureAlgorithm
		key  any
	}{
		pkjwtID:  {[]jose.SignatureAlgorithm{jose.ES256}, fx.key.Public()},
		victimID: {[]jose.SignatureAlgorithm{jose.ES256}, fx.victim.Public()},
		pinnedID: {[]jose.SignatureAlgorithm{jose.PS256}, fx.rsaKey.Public()},
		csjwtID:  {[]jose.SignatureAlgorithm{jose.HS256, jose.HS384}, []byte(csjwtSecret)},
	}
	accepted := map[string]bool{} // client and jti of each assertion that authenticated
	f.Fuzz(func(t *testing.T, clientID, assertion string) {
		form := url.Values{"grant_type": {GrantClientCredentials}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {assertion}}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		r := httptest.NewRequest(http.MethodPost, testIssuer+PathToken, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res := serveFuzz(e.handler, r)
		if res.Status != http.StatusOK {
			checkJSONError(t, res, "invalid_client", "invalid_request", "unauthorized_client", "invalid_scope", "invalid_target")
			return
		}
		m := checkJSONObject(t, res)
		var c jwt.Claims
		tok, err := jwt.ParseSigned(assertion, assertionAlgs)
		if err != nil {
			t.Fatalf("authenticated with an assertion go-jose cannot parse (%v): %q", err, assertion)
		}
		if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
			t.Fatalf("authenticated with an assertion whose claims do not decode (%v): %q", err, assertion)
		}
		v, known := verifiers[c.Subject]
		if !known || !slices.Contains(v.algs, jose.SignatureAlgorithm(tok.Headers[0].Algorithm)) || tok.Claims(v.key, &c) != nil {
			t.Fatalf("client %q authenticated with an assertion its key does not verify: %q", c.Subject, assertion)
		}
		if clientID != "" && clientID != c.Subject {
			t.Fatalf("client_id %q authenticated with %s's assertion", clientID, c.Subject)
		}
		if accepted[c.Subject+"\x00"+c.ID] {
			t.Fatalf("assertion id %q of %s accepted twice (%q)", c.ID, c.Subject, assertion)
		}
		accepted[c.Subject+"\x00"+c.ID] = true
		at, _ := m["access_token"].(string)
		var atClaims struct {
			ClientID string `json:"client_id"`
		}
		if parsed, err := jwt.ParseSigned(at, idTokenAlgs); err != nil || parsed.UnsafeClaimsWithoutVerification(&atClaims) != nil || atClaims.ClientID != c.Subject {
			t.Fatalf("token for %q issued on %s's assertion: %v", atClaims.ClientID, c.Subject, m)
		}
	})
}

// FuzzCIBASignedParameters sends arbitrary compact JWS strings as the
// three signed parameters of a CIBA request, the first byte picking
// which: a request object (CIBA Core §7.1.1) from a client that must sign
// its requests, a login_hint_token signed by the client, an id_token_hint
// the server issued. Property: never a panic or a 5xx, every refusal a
// CIBA JSON error; a request is accepted only on a JWT that verifies
// independently (go-jose, with the client's secret or the server's
// published keys) and names the client and this issuer as it must, and a
// request object only once.
func FuzzCIBASignedParameters(f *testing.F) {
	e := newFuzzEnv(f)
	setUserCode(f, e, "alice", "4711")
	id := e.start(cibaPollBasic, aliceHint())
	e.approve("alice", true)
	idToken := e.tokenOK(cibaPollBasic, url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}}).IDToken
	webappIDToken, _ := e.webappTokens(e.newBrowser(), "openid")
	set := e.jwks()
	now := e.clock.Now()
	hintToken := func(alg jose.SignatureAlgorithm, secret string, claims map[string]any) string {
		base := map[string]any{"iss": cibaHMACID, "aud": e.issuer, "exp": now.Add(time.Minute).Unix(),
			"sub_id": map[string]string{"format": "username", "username": "alice"}}
		for k, v := range claims {
			if v == nil {
				delete(base, k)
			} else {
				base[k] = v
			}
		}
		return signAssertion(f, []byte(secret), alg, "", base)
	}
	const (
		requestObject = iota
		loginHintToken
		idTokenHint
	)
	seeds := []struct {
		which uint8
		jws   string
	}{
		{requestObject, signedRequest(f, e, map[string]any{"user_code": "4711", "binding_message": "W4SCT"})},
		{requestObject, signedRequest(f, e, map[string]any{"user_code": "4711", "requested_expiry": 60, "scope": "openid profile"})},
		{requestObject, signedRequest(f, e, map[string]any{"user_code": "0000"})},
		{requestObject, signedRequest(f, e, map[string]any{"exp": now.Add(-time.Hour).Unix()})},
		{requestObject, signedRequest(f, e, map[string]any{"aud": "https://elsewhere.example", "jti": nil})},
		{requestObject, signedRequest(f, e, map[string]any{"requested_expiry": 1.5, "acr_values": []string{"x"}})},
		{requestObject, noneJWT(f, map[string]any{"iss": cibaSignedID, "aud": e.issuer, "login_hint": "alice"})},
		{requestObject, signAssertion(f, []byte(cibaHMACSecret), jose.HS384, "", map[string]any{"iss": cibaSignedID, "aud": e.issuer})},
		{loginHintToken, hintToken(jose.HS256, cibaHMACSecret, nil)},
		{loginHintToken, hintToken(jose.HS512, cibaHMACSecret, map[string]any{"sub_id": nil, "sub": "bob"})},
		{loginHintToken, hintToken(jose.HS256, cibaHMACSecret, map[string]any{"sub_id": map[string]string{"format": "opaque", "id": "alice"}})},
		{loginHintToken, hintToken(jose.HS256, cibaHMACSecret, map[string]any{"exp": now.Add(-time.Hour).Unix()})},
		{loginHintToken, hintToken(jose.HS256, cibaHMACSecret, map[string]any{"exp": nil, "iss": "someone"})},
		{loginHintToken, hintToken(jose.HS256, cibaSignedSecret+"-and-more-bytes", nil)},
		{idTokenHint, idToken},
		{idTokenHint, webappIDToken.IDToken},
		{idTokenHint, webappIDToken.AccessToken},
		{idTokenHint, idToken[:len(idToken)-2]},
		{idTokenHint, "eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.e30.c2ln"},
		{idTokenHint, "a.b.c.d.e"},
	}
	for _, s := range seeds {
		f.Add(s.which, s.jws)
	}
	usedJTIs := map[string]bool{}
	f.Fuzz(func(t *testing.T, which uint8, jws string) {
		var form url.Values
		var authz string
		switch which % 3 {
		case requestObject:
			form = url.Values{"request": {jws}}
			for k, v := range signedAssertion(t, e) {
				form[k] = v
			}
		case loginHintToken:
			form = url.Values{"scope": {"openid"}, "login_hint_token": {jws}, "client_assertion_type": {ClientAssertionType},
				"client_assertion": {signAssertion(t, []byte(cibaHMACSecret), jose.HS256, "", e.assertionClaims(cibaHMACID))}}
		default:
			form = url.Values{"scope": {"openid"}, "id_token_hint": {jws}}
			authz = basicHeader(cibaPollBasic)
		}
		r := httptest.NewRequest(http.MethodPost, testIssuer+PathBackchannelAuthentication, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		res := serveFuzz(e.handler, r)
		if res.Status != http.StatusOK {
			checkJSONError(t, res, cibaErrorCodes...)
			return
		}
		backChannelEndpoints[4].ok(t, res)
		var c jwt.Claims
		switch which % 3 {
		case requestObject:
			tok, err := jwt.ParseSigned(jws, []jose.SignatureAlgorithm{jose.HS256})
			if err != nil || tok.Claims([]byte(cibaSignedSecret), &c) != nil || c.Issuer != cibaSignedID || !c.Audience.Contains(testIssuer) || c.ID == "" {
				t.Fatalf("request object accepted that the client's secret does not verify as its own: %q", jws)
			}
			if usedJTIs[c.ID] {
				t.Fatalf("request object %q accepted twice: %q", c.ID, jws)
			}
			usedJTIs[c.ID] = true
		case loginHintToken:
			tok, err := jwt.ParseSigned(jws, clientSecretJWTAlgs)
			if err != nil || tok.Claims([]byte(cibaHMACSecret), &c) != nil || c.Issuer != cibaHMACID || !c.Audience.Contains(testIssuer) ||
				c.Expiry == nil || !e.clock.Now().Before(c.Expiry.Time().Add(assertionLeeway)) {
				t.Fatalf("login_hint_token accepted that the client's secret does not verify as its own, live: %q", jws)
			}
		default:
			if _, aud, ok := verifiedIDToken(set, jws); !ok || !slices.Contains(aud, cibaPollID) {
				t.Fatalf("id_token_hint accepted that is not an ID token issued to %s: %q", cibaPollID, jws)
			}
		}
	})
}

// bindingMessageRE finds the binding message on the approval page.
var bindingMessageRE = regexp.MustCompile(`(?s)<p class="binding-message">(.*?)</p>`)

// plainBindingMessage is CIBA Core §7.1's binding_message as the server
// promises to take it, written out from the rule rather than the code:
// valid UTF-8, at most maxBindingMessageRunes characters, no C0 or C1
// control, line or paragraph separator, or bidirectional control.
func plainBindingMessage(m string) bool {
	n := 0
	for i := 0; i < len(m); {
		r, size := utf8.DecodeRuneInString(m[i:])
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		switch {
		case r < 0x20, r >= 0x7f && r < 0xa0, r == 0x2028, r == 0x2029,
			r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return false
		}
		i += size
		n++
	}
	return n <= maxBindingMessageRunes
}

// FuzzCIBABindingMessage asks for a CIBA sign-in of alice with an
// arbitrary binding_message. Property: never a panic or a 5xx; the
// message is refused, with invalid_binding_message, exactly when it is not
// plain text (plainBindingMessage); an accepted one is shown to alice on
// the approval page inert and exactly as sent, and in the admin view.
func FuzzCIBABindingMessage(f *testing.F) {
	e := newFuzzEnv(f)
	alice := e.newBrowser()
	page := alice.get(PathCIBA)
	action, fields := page.form(f)
	fields.Set("username", "alice")
	fields.Set("password", alicePassword)
	if res := alice.post(action, fields); res.Status != http.StatusOK {
		f.Fatalf("signing in on the approval page: %d %s", res.Status, res.Body)
	}
	cookie := browserCookies(alice)
	for _, s := range []string{
		"", "W4SCT", "Order #1234: pay 5 € to Bob", `<img src=x onerror=alert(1)> "7Q"`, "&amp; &lt;", "{{.UserName}}",
		"a\nb", "tab\there", "\x00", "\u202eevil", "line\u2028sep", "zero\u200bwidth", "\xff\xfe",
		strings.Repeat("é", maxBindingMessageRunes), strings.Repeat("x", maxBindingMessageRunes+1), "日本語のメッセージ", " ",
	} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, msg string) {
		form := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {msg}}
		r := httptest.NewRequest(http.MethodPost, testIssuer+PathBackchannelAuthentication, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", basicHeader(cibaPollBasic))
		res := serveFuzz(e.handler, r)
		plain := plainBindingMessage(msg)
		if res.Status != http.StatusOK {
			m := checkJSONError(t, res, "invalid_binding_message")
			if plain {
				t.Fatalf("plain-text binding message %q refused: %v", msg, m)
			}
			return
		}
		if !plain {
			t.Fatalf("binding message %q accepted", msg)
		}
		list, err := e.srv.PendingCIBARequests(ctx, "alice")
		if err != nil || len(list) != 1 || list[0].BindingMessage != msg {
			t.Fatalf("pending requests %+v (%v), want one with binding message %q", list, err, msg)
		}
		shown := serveFuzz(e.handler, fuzzRequest(false, PathCIBA, "", "", cookie))
		if shown.Status != http.StatusOK {
			t.Fatalf("approval page: %d %s", shown.Status, shown.Body)
		}
		checkInertHTML(t, shown)
		found := bindingMessageRE.FindAllStringSubmatch(shown.Body, -1)
		switch {
		case msg == "" && len(found) != 0:
			t.Fatalf("an empty binding message is shown: %q", found)
		case msg != "" && (len(found) != 1 || html.UnescapeString(found[0][1]) != msg):
			t.Fatalf("binding message %q shown as %q", msg, found)
		}
		if _, err := e.srv.DecideCIBARequest(ctx, list[0].ID, false); err != nil {
			t.Fatal(err)
		}
	})
}
