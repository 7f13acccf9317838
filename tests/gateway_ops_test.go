package tests

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestGatewaySendsAVerifiableIdentityAssertion signs in with
// identity_assertion on: the upstream gets a short-lived JWT it can verify
// with the JWKS the gateway serves without a session, and a client cannot
// send its own.
func TestGatewaySendsAVerifiableIdentityAssertion(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, gatewayCaddyfile, map[string]string{
		"Upstream": up.Listener.Addr().String(), "Policy": "identity_assertion",
	})
	browser := NewBrowser(t)
	signInThroughGateway(t, g, browser, g.AppURL+"/", "alice", "alice-password")
	forged := http.Header{"X-Portcullis-Assertion": {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0."}}
	if resp, body := navigate(t, browser, g.AppURL+"/", forged); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed-in request: %d %s", resp.StatusCode, body)
	}
	assertion := up.lastRequest().Header.Values("X-Portcullis-Assertion")
	if len(assertion) != 1 {
		t.Fatalf("upstream got %d assertions, want exactly one (the forged one must be gone)", len(assertion))
	}

	// The app fetches the JWKS from the gateway, without a session.
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, g.AppURL+"/oauth2/jwks", nil,
		http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: %d %s", resp.StatusCode, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatal("the JWKS publishes a private key")
		}
	}
	tok, err := jwt.ParseSigned(assertion[0], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("assertion is not an ES256 JWT: %v", err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("the assertion's kid %q is not in the JWKS", tok.Headers[0].KeyID)
	}
	var std jwt.Claims
	var idc struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
	}
	if err := tok.Claims(keys[0].Key, &std, &idc); err != nil {
		t.Fatalf("the assertion does not verify with the gateway's JWKS: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: g.AppURL, AnyAudience: jwt.Audience{g.AppURL}, Subject: "alice", Time: time.Now()}, time.Second); err != nil {
		t.Errorf("assertion claims: %v (%+v)", err, std)
	}
	if time.Until(std.Expiry.Time()) > 5*time.Minute {
		t.Errorf("assertion valid until %v: it must be short-lived", std.Expiry.Time())
	}
	if idc.Email != "alice@example.com" || len(idc.Groups) != 1 || idc.Groups[0] != "admins" {
		t.Errorf("assertion identity claims %+v", idc)
	}

	t.Run("a forged assertion does not reach the upstream on a skipped path", func(t *testing.T) {
		navigate(t, NewBrowser(t), g.AppURL+"/public/x", forged)
		if got := up.lastRequest().Header.Get("X-Portcullis-Assertion"); got != "" {
			t.Errorf("skipped path forwarded the client's assertion %q", got)
		}
	})
}

// TestGatewayKeepsWebSocketsWorking opens a WebSocket through oidc_login +
// reverse_proxy: with a session the upgrade reaches the app and the tunnel
// carries data both ways; without one the handshake gets 401.
func TestGatewayKeepsWebSocketsWorking(t *testing.T) {
	echo := newEchoWebSocketUpstream(t)
	g := StartGatewayVars(t, gatewayCaddyfile, map[string]string{"Upstream": echo.Addr().String()})
	browser := NewBrowser(t)
	// The echo upstream answers plain requests too, so the sign-in lands.
	signInThroughGateway(t, g, browser, g.AppURL+"/", "alice", "alice-password")
	appURL, _ := url.Parse(g.AppURL)
	var cookies []string
	for _, c := range browser.Jar.Cookies(appURL) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}

	status, conn := webSocketHandshake(t, appURL.Host, strings.Join(cookies, "; "))
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket handshake with a session: status %d, want 101", status)
	}
	for _, msg := range []string{"ping", "second message"} {
		if _, err := fmt.Fprintf(conn, "%s\n", msg); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := conn.r.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "echo: "+msg {
			t.Fatalf("tunnel answered %q, %v; want echo of %q", line, err, msg)
		}
	}
	conn.Close()

	if status, c := webSocketHandshake(t, appURL.Host, ""); status != http.StatusUnauthorized {
		t.Errorf("WebSocket handshake without a session: status %d, want 401", status)
	} else {
		c.Close()
	}
}

// TestGatewayCountsLoginsInCaddysMetrics checks the gateway's Prometheus
// counters appear on Caddy's admin /metrics after a sign-in.
func TestGatewayCountsLoginsInCaddysMetrics(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, gatewayCaddyfile, map[string]string{"Upstream": up.Listener.Addr().String()})
	browser := NewBrowser(t)
	signInThroughGateway(t, g, browser, g.AppURL+"/", "alice", "alice-password")
	// A forged session cookie is refused and counted.
	forged := http.Header{"Cookie": {"portcullis_session=forged-value"}}
	if resp, _ := navigate(t, NewBrowser(t), g.AppURL+"/", forged); resp.StatusCode != http.StatusFound {
		t.Errorf("forged session cookie: status %d, want a redirect to sign in", resp.StatusCode)
	}
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, g.AdminURL+"/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /metrics: %d", resp.StatusCode)
	}
	provider := regexp.QuoteMeta(`provider="` + g.BaseURL + `"`)
	for _, want := range []string{
		`portcullis_gateway_logins_started_total\{` + provider + `\} [1-9]`,
		`portcullis_gateway_logins_succeeded_total\{` + provider + `\} 1`,
		`portcullis_gateway_sessions_rejected_total\{` + provider + `\} [1-9]`,
	} {
		if !regexp.MustCompile(want).Match(body) {
			t.Errorf("/metrics has no line matching %s", want)
		}
	}
	if strings.Contains(string(body), "alice-password") || strings.Contains(string(body), "gateway-secret") {
		t.Error("/metrics shows a secret")
	}
}

// echoUpstream answers plain requests with a greeting and WebSocket
// upgrades with a line-echo tunnel (enough to prove the proxy passes the
// upgrade and both directions of the stream).
type echoUpstream struct{ net.Listener }

func newEchoWebSocketUpstream(t *testing.T) *echoUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			io.WriteString(w, "hello "+r.Header.Get("X-Forwarded-User"))
			return
		}
		if r.Header.Get("X-Forwarded-User") != "alice" {
			http.Error(w, "no identity", http.StatusForbidden)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(rw, "echo: %s", line)
			rw.Flush()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &echoUpstream{ln}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

// webSocketHandshake sends a browser-like WebSocket upgrade to host and
// returns the response status and the connection (for reading the tunnel).
func webSocketHandshake(t *testing.T, host, cookie string) (int, *bufferedConn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /socket HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://" + host + "\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	bc := &bufferedConn{Conn: c, r: bufio.NewReader(c)}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bc.r, nil)
	if err != nil {
		c.Close()
		t.Fatalf("reading the handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
	}
	return resp.StatusCode, bc
}
