package caddymodule

import (
	"context"
	"encoding/json"
	"time"

	"github.com/portcullis-gw/portcullis/session"
	"github.com/portcullis-gw/portcullis/store"
)

// gatewaySessions keeps the login gateway's server-side sessions in the
// portcullis app's store (session.Backend over store.Store).
type gatewaySessions struct {
	store  store.Store
	issuer string
}

func (b gatewaySessions) SaveSession(ctx context.Context, key string, d *session.Data, expiresAt time.Time) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return b.store.PutGatewaySession(ctx, &store.GatewaySession{
		ID: key, Issuer: b.issuer, Subject: d.Subject, SID: d.ProviderSID, Data: raw,
		CreatedAt: d.CreatedAt, ExpiresAt: expiresAt,
	})
}

func (b gatewaySessions) LoadSession(ctx context.Context, key string) (*session.Data, error) {
	gs, err := b.store.GetGatewaySession(ctx, key)
	if err != nil {
		return nil, err
	}
	d := new(session.Data)
	if err := json.Unmarshal(gs.Data, d); err != nil {
		return nil, err
	}
	return d, nil
}

func (b gatewaySessions) DeleteSession(ctx context.Context, key string) error {
	return b.store.DeleteGatewaySession(ctx, key)
}

// endSessions is back-channel logout over the store.
func (b gatewaySessions) endSessions(ctx context.Context, subject, sid string) (int, error) {
	return b.store.DeleteGatewaySessions(ctx, b.issuer, subject, sid)
}

// Interface guard
var _ session.Backend = gatewaySessions{}
