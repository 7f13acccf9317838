package tests

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestOpenIDClientJWTClientAuthInterop runs tests/interop/private_key_jwt.mjs:
// openid-client (npm, v6) authenticates with private_key_jwt and
// client_secret_jwt against the gateway of clientAuthCaddyfile, for client
// credentials, introspection and revocation, and sees replayed and
// misaddressed assertions refused.
//
// Without node on PATH the test is skipped, except under CI=true where that
// is a failure.
func TestOpenIDClientJWTClientAuthInterop(t *testing.T) {
	node := requireNode(t)
	dir, err := filepath.Abs(interopDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)

	g, key, _ := startClientAuthGateway(t)
	private, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: signerKID, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	runNodeScript(t, node, dir, "private_key_jwt.mjs",
		"ISSUER="+g.BaseURL,
		"API_AUDIENCE="+apiAudience,
		"SIGNER_CLIENT_ID="+signerID,
		"SIGNER_PRIVATE_JWK="+string(private),
		"MAC_CLIENT_ID="+macID,
		"MAC_CLIENT_SECRET="+macSecret,
	)
}
