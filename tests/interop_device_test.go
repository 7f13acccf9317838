package tests

import (
	"path/filepath"
	"testing"
)

// TestOpenIDClientDeviceInterop runs tests/interop/device.mjs: the
// openid-client library (npm, v6) asks for a device code
// (initiateDeviceAuthorization) and polls with its own loop
// (pollDeviceAuthorizationGrant) while the script approves on the
// verification page, refreshes the tokens, finds the device code spent,
// and sees a denied request rejected with access_denied.
//
// Without node on PATH the test is skipped, except under CI=true where that
// is a failure.
func TestOpenIDClientDeviceInterop(t *testing.T) {
	node := requireNode(t)
	dir, err := filepath.Abs(interopDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)

	g := StartGateway(t, deviceCaddyfile)
	runNodeScript(t, node, dir, "device.mjs",
		"ISSUER="+g.BaseURL,
		"USERNAME="+aliceUsername,
		"PASSWORD="+alicePassword,
		"CLIENT_ID="+deviceClientID,
		"CLIENT_NAME="+deviceClientName,
	)
}
