package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	interopDir     = "interop"
	npmCITimeout   = 3 * time.Minute
	interopTimeout = 2 * time.Minute
)

// TestOpenIDClientInterop runs tests/interop/interop.mjs, which drives the
// gateway with the openid-client library (npm, v6): discovery, code+PKCE
// for a confidential and a public client, refresh, userinfo, client
// credentials with a JWT access token, introspection and revocation.
//
// Without node on PATH the test is skipped, except under CI=true where that
// is a failure.
func TestOpenIDClientInterop(t *testing.T) {
	node := requireNode(t)
	dir, err := filepath.Abs(interopDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)

	g := StartGateway(t, baseCaddyfile)
	runNodeScript(t, node, dir, "interop.mjs",
		"ISSUER="+g.BaseURL,
		"USERNAME="+aliceUsername,
		"PASSWORD="+alicePassword,
		"EXPECTED_EMAIL="+aliceEmail,
		"EXPECTED_NAME="+aliceName,
		"WEBAPP_CLIENT_ID="+webappID,
		"WEBAPP_CLIENT_SECRET="+webappSecret,
		"WEBAPP_REDIRECT_URI="+g.URL("/callback"),
		"SPA_CLIENT_ID="+spaID,
		"SPA_REDIRECT_URI="+g.URL("/spa-callback"),
		"BACKEND_CLIENT_ID="+backendID,
		"BACKEND_CLIENT_SECRET="+backendSecret,
		"API_AUDIENCE="+apiAudience,
	)
}

// ensureNodeModules runs `npm ci` in dir when its dependencies are not
// installed.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	installed := true
	for _, p := range []string{".package-lock.json", "openid-client/package.json", "jose/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p)); err != nil {
			installed = false
		}
	}
	if installed {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("node_modules missing in %s and npm is not on PATH: %v", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmCITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out := &lineLogger{t: t, prefix: "npm ci: "}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	out.Flush()
	if err != nil {
		t.Fatalf("npm ci in %s: %v", dir, err)
	}
}

// lineLogger is an io.Writer that logs each complete line with t.Log as it
// arrives, so a subprocess's output streams into the test log.
type lineLogger struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    bytes.Buffer
}

// Write logs each complete line of p, keeping a trailing partial line.
func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			// Incomplete line: keep it for the next write.
			l.buf.Reset()
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.t.Log(l.prefix + strings.TrimRight(line, "\r\n"))
	}
}

// Flush logs what remains after the last newline.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.t.Log(l.prefix + l.buf.String())
		l.buf.Reset()
	}
}

// requireNode returns node's path; without node the test is skipped,
// except under CI=true where that is a failure.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is not on PATH (required under CI=true): %v", err)
		}
		t.Skipf("node is not on PATH: %v", err)
	}
	return node
}

// runNodeScript runs script in dir with env added, logging its output, and
// fails the test when it fails or overruns interopTimeout.
func runNodeScript(t *testing.T, node, dir, script string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	out := &lineLogger{t: t, prefix: strings.TrimSuffix(script, ".mjs") + ": "}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	out.Flush()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s", script, interopTimeout)
	}
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
}
