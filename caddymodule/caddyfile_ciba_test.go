package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/store"
)

// TestCaddyfileCIBABlock: the ciba block reaches the app and the flows
// config; unset, everything takes the flows defaults.
func TestCaddyfileCIBABlock(t *testing.T) {
	app, err := parseOption(t, `portcullis {
		issuer https://auth.example.com
		ciba {
			request_ttl 10m
			poll_interval 2s
			max_pending_per_user 3
			rate_limit_per_client 50 1s
			rate_limit_per_user 5 1m
			webhook https://auth-app.example.com/hook
			insecure_notification_endpoints
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.CIBA.flows()
	want := flows.CIBAConfig{RequestTTL: 10 * time.Minute, PollInterval: 2 * time.Second, MaxPendingPerUser: 3,
		ClientRate: flows.RateLimit{Burst: 50, Interval: time.Second}, UserRate: flows.RateLimit{Burst: 5, Interval: time.Minute},
		WebhookURL: "https://auth-app.example.com/hook", InsecureNotificationEndpoints: true}
	if cfg.RequestTTL != want.RequestTTL || cfg.PollInterval != want.PollInterval || cfg.MaxPendingPerUser != want.MaxPendingPerUser ||
		cfg.ClientRate != want.ClientRate || cfg.UserRate != want.UserRate || cfg.WebhookURL != want.WebhookURL || !cfg.InsecureNotificationEndpoints {
		t.Errorf("ciba config %+v, want %+v", cfg, want)
	}
	if err := app.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	app, err = parseOption(t, `portcullis {
		issuer https://auth.example.com
	}`)
	if err != nil || app.CIBA != nil {
		t.Fatalf("no ciba block: %v %+v", err, app.CIBA)
	}
}

// TestCaddyfileCIBAErrors: bad CIBA options are refused on their line.
func TestCaddyfileCIBAErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{`portcullis {
			ciba {
				request_ttl 2h
			}
		}`, "longer than the maximum"},
		{`portcullis {
			ciba {
				rate_limit_per_user 10
			}
		}`, "usage: rate_limit_per_user <burst> <interval>"},
		{`portcullis {
			ciba {
				max_pending_per_user none
			}
		}`, "positive integer"},
		{`portcullis {
			ciba {
				webhook http://hooks.example.com/x
			}
		}`, "non-loopback"},
		{`portcullis {
			ciba {
				webhook http://127.0.0.1:9/x
			}
		}`, "insecure_notification_endpoints"},
		{`portcullis {
			ciba {
				shout loudly
			}
		}`, `unrecognized ciba option "shout"`},
		{`portcullis {
			client kiosk {
				secret s
				grant_types ciba
				backchannel_token_delivery_mode carrier-pigeon
			}
		}`, "poll, ping or push"},
		{`portcullis {
			client kiosk {
				secret s
				grant_types ciba
				backchannel_token_delivery_mode ping
			}
		}`, "needs a backchannel_client_notification_endpoint"},
		{`portcullis {
			client kiosk {
				public
				grant_types ciba
			}
		}`, "public client cannot use CIBA"},
		{`portcullis {
			client kiosk {
				secret s
				grant_types ciba
				backchannel_client_notification_endpoint https://kiosk.example.com/cb
			}
		}`, "ping and push modes only"},
		{`portcullis {
			client kiosk {
				secret s
				grant_types ciba
				backchannel_authentication_request_signing_alg ES256
			}
		}`, "needs the client's public keys"},
	} {
		_, err := parseOption(t, tc.input)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.input, err, tc.want)
		}
	}
}

// TestCIBAClientConfig: the ciba alias, the client fields, and the
// insecure switch deciding about plain-http endpoints when the client is
// stored.
func TestCIBAClientConfig(t *testing.T) {
	cc := ClientConfig{ID: "kiosk", Secret: "s", GrantTypes: []string{"ciba"}, BackchannelTokenDeliveryMode: "push",
		BackchannelClientNotificationEndpoint: "http://127.0.0.1:8099/cb", BackchannelUserCodeParameter: true,
		LogoURI: "https://kiosk.example.com/logo.png"}
	rec, err := cc.ClientRecord("s")
	if err != nil {
		t.Fatal(err)
	}
	if rec.GrantTypes[0] != flows.GrantCIBA || rec.BackchannelTokenDeliveryMode != store.CIBAModePush ||
		!rec.BackchannelUserCodeParameter || rec.LogoURI != cc.LogoURI {
		t.Errorf("record %+v", rec)
	}
	app := &App{}
	if err := app.checkCIBAEndpoint(rec); err == nil || !strings.Contains(err.Error(), "insecure_notification_endpoints") {
		t.Errorf("plain http without the switch: %v", err)
	}
	app.CIBA = &CIBAConfig{InsecureNotificationEndpoints: true}
	if err := app.checkCIBAEndpoint(rec); err != nil {
		t.Errorf("plain http on loopback with the switch: %v", err)
	}
	if _, err := (ClientConfig{ID: "x", Secret: "s", GrantTypes: []string{"ciba"}, LogoURI: "javascript:alert(1)"}).ClientRecord("s"); err == nil {
		t.Error("a javascript: logo_uri was accepted")
	}
}

// TestCIBAValidatePollIntervalAndTTL: a poll interval as long as the
// request cannot work.
func TestCIBAValidatePollIntervalAndTTL(t *testing.T) {
	app := &App{CIBA: &CIBAConfig{PollInterval: caddy.Duration(10 * time.Minute)}}
	if err := app.Validate(); err == nil || !strings.Contains(err.Error(), "poll_interval") {
		t.Errorf("Validate: %v", err)
	}
}
