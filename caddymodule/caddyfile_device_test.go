package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestCaddyfileDeviceFlowOptions: device_code_ttl and device_poll_interval
// reach the app; unset, they are zero (the flows defaults, 10m and 5s).
func TestCaddyfileDeviceFlowOptions(t *testing.T) {
	app, err := parseOption(t, `portcullis {
		issuer https://auth.example.com
		device_code_ttl 15m
		device_poll_interval 3s
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(app.DeviceCodeTTL) != 15*time.Minute || time.Duration(app.DevicePollInterval) != 3*time.Second {
		t.Errorf("device_code_ttl %s, device_poll_interval %s", time.Duration(app.DeviceCodeTTL), time.Duration(app.DevicePollInterval))
	}
	if err := app.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	app, err = parseOption(t, `portcullis {
		issuer https://auth.example.com
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if app.DeviceCodeTTL != 0 || app.DevicePollInterval != 0 {
		t.Errorf("unset options: %v %v", app.DeviceCodeTTL, app.DevicePollInterval)
	}
}

// TestCaddyfileDeviceFlowOptionErrors: bad values are refused with the
// option named.
func TestCaddyfileDeviceFlowOptionErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{`portcullis {
			device_code_ttl
		}`, "wrong argument count"},
		{`portcullis {
			device_code_ttl 10m 20m
		}`, "wrong argument count"},
		{`portcullis {
			device_poll_interval soon
		}`, "invalid duration"},
		{`portcullis {
			device_poll_interval -5s
		}`, "must be positive"},
	} {
		_, err := parseOption(t, tc.input)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.input, err, tc.want)
		}
	}
}

// TestDevicePollIntervalMustBeShorterThanTheCodeTTL: a device that may
// not poll before its code expires cannot work.
func TestDevicePollIntervalMustBeShorterThanTheCodeTTL(t *testing.T) {
	for _, app := range []*App{
		{DeviceCodeTTL: caddy.Duration(time.Minute), DevicePollInterval: caddy.Duration(time.Minute)},
		{DevicePollInterval: caddy.Duration(20 * time.Minute)}, // against the 10m default
	} {
		if err := app.Validate(); err == nil || !strings.Contains(err.Error(), "device_poll_interval") {
			t.Errorf("Validate(%v, %v): %v", app.DeviceCodeTTL, app.DevicePollInterval, err)
		}
	}
}
