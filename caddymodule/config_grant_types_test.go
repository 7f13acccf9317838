package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/flows"
)

func TestClientRecordGrantTypes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     ClientConfig
		want    []string
		wantErr string
	}{
		{
			name: "password grant for a trusted legacy client",
			cfg:  ClientConfig{ID: "legacy", Secret: "s", GrantTypes: []string{"password", "refresh_token"}},
			want: []string{flows.GrantPassword, flows.GrantRefreshToken},
		},
		{
			name: "device_code is short for the RFC 8628 URN",
			cfg:  ClientConfig{ID: "cli", Public: true, GrantTypes: []string{"device_code", "refresh_token"}},
			want: []string{flows.GrantDeviceCode, flows.GrantRefreshToken},
		},
		{
			name: "the URN itself is accepted",
			cfg:  ClientConfig{ID: "cli", Public: true, GrantTypes: []string{flows.GrantDeviceCode}},
			want: []string{flows.GrantDeviceCode},
		},
		{
			name:    "unknown grant types name the supported ones",
			cfg:     ClientConfig{ID: "x", Secret: "s", GrantTypes: []string{"implicit"}},
			wantErr: `grant type "implicit" is not supported; use one of authorization_code, refresh_token, client_credentials, ` + flows.GrantDeviceCode + `, password`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			given := append([]string(nil), tc.cfg.GrantTypes...)
			rec, err := tc.cfg.ClientRecord(tc.cfg.Secret)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rec.GrantTypes, tc.want) {
				t.Errorf("grant types %v, want %v", rec.GrantTypes, tc.want)
			}
			if !reflect.DeepEqual(tc.cfg.GrantTypes, given) {
				t.Errorf("ClientRecord changed the config's grant types to %v", tc.cfg.GrantTypes)
			}
		})
	}
}

func TestCaddyfileRequirePAR(t *testing.T) {
	app, err := parseOption(t, `portcullis {
		client webapp {
			secret s
			redirect_uris https://app.example.com/cb
			require_par
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := app.Clients[0].ClientRecord("s")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.RequirePushedAuthorizationRequests {
		t.Errorf("require_par did not reach the client record: %+v", rec)
	}
	if _, err := parseOption(t, `portcullis {
		client webapp {
			secret s
			redirect_uris https://app.example.com/cb
			require_par yes
		}
	}`); err == nil {
		t.Errorf("require_par with an argument was accepted")
	}
}

func TestCaddyfileLoginThrottle(t *testing.T) {
	app, err := parseOption(t, "portcullis {\n\tlogin_throttle 3 50 30s\n}")
	if err != nil {
		t.Fatal(err)
	}
	got := app.LoginThrottle.flows()
	if got.PerUser != 3 || got.PerIP != 50 || got.Refill != 30*time.Second {
		t.Errorf("login_throttle 3 50 30s gave %+v", got)
	}
	if (*LoginThrottleConfig)(nil).flows() != (flows.ThrottleConfig{}) {
		t.Errorf("no login_throttle must leave the flows defaults")
	}
	for _, bad := range []string{"login_throttle", "login_throttle 3 50", "login_throttle 0 50 1m", "login_throttle x 50 1m", "login_throttle 3 50 soon", "login_throttle 3 50 -1m"} {
		if _, err := parseOption(t, "portcullis {\n\t"+bad+"\n}"); err == nil || !strings.Contains(err.Error(), "login_throttle") {
			t.Errorf("%q: error %v, want one naming login_throttle", bad, err)
		}
	}
}
