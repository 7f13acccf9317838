package flows

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// BenchmarkDeviceAuthorization is one device code issued through the
// handler: public client look-up, scope checks, one store write. The
// requests run 32 per core at once, as under load: bbolt batches
// concurrent writes into one fsync, and a lone writer would mostly measure
// the batch delay and the fsync.
func BenchmarkDeviceAuthorization(b *testing.B) {
	env := newDeviceServer(b)
	form := url.Values{"client_id": {tvID}, "scope": {"openid offline_access"}}.Encode()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res := env.postRaw(PathDeviceAuthorization, "application/x-www-form-urlencoded", form, nil)
			if res.Status != http.StatusOK {
				b.Errorf("device authorization: %d %s", res.Status, res.Body)
				return
			}
		}
	})
}

// BenchmarkDevicePollPending is one poll of a pending request through the
// token endpoint, at the allowed interval: it answers
// authorization_pending after a read-only store look-up.
func BenchmarkDevicePollPending(b *testing.B) {
	env := newDeviceServer(b, func(c *Config) { c.DeviceCodeTTL = 10_000 * time.Hour })
	// Eight devices polled in turn while the clock moves 1 s per poll:
	// each polls every 8 s, past its 5 s interval.
	const devices = 8
	forms := make([]string, devices)
	for i := range forms {
		da := env.deviceCode(tvPublic, "openid")
		forms[i] = url.Values{"client_id": {tvID}, "grant_type": {GrantDeviceCode}, "device_code": {da.DeviceCode}}.Encode()
	}
	i := 0
	for b.Loop() {
		env.clock.Advance(time.Second)
		res := env.postRaw(PathToken, "application/x-www-form-urlencoded", forms[i%devices], nil)
		if res.Status != http.StatusBadRequest {
			b.Fatalf("poll: %d %s", res.Status, res.Body)
		}
		i++
	}
	b.StopTimer()
	// The last round's answers must still be the pending path, not slow_down.
	for range devices {
		env.clock.Advance(time.Second)
		res := env.postRaw(PathToken, "application/x-www-form-urlencoded", forms[i%devices], nil)
		wantOAuthError(b, res, http.StatusBadRequest, "authorization_pending")
		i++
	}
}
