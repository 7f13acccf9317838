package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// TestRevokedIDsAreKeptInMemoryAcrossRestartsAndCollected: a JWT revoked
// with its grant or on its own is answered from memory, still after the
// file is reopened, and dropped from memory once its token has expired.
func TestRevokedIDsAreKeptInMemoryAcrossRestartsAndCollected(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(func() time.Time { return now })
	g := &store.Grant{ID: "g1", ClientID: "app", Subject: "alice", ExpiresAt: t0.Add(24 * time.Hour)}
	at := &store.AccessToken{Digest: store.SelfContainedPrefix + "jwt-of-g1", GrantID: "g1", ClientID: "app", JTI: "jwt-of-g1", ExpiresAt: t0.Add(time.Hour)}
	if err := s.IssueGrant(ctx, g, nil, at); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := s.IsJTIRevoked(ctx, "jwt-of-g1"); revoked {
		t.Fatal("a live token is revoked")
	}
	if err := s.RevokeGrant(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeJTI(ctx, "cc-jwt", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeJTI(ctx, "forever", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetClock(func() time.Time { return now })
	for _, jti := range []string{"jwt-of-g1", "cc-jwt", "forever"} {
		if revoked, _ := s.IsJTIRevoked(ctx, jti); !revoked {
			t.Errorf("%s is not revoked after a restart", jti)
		}
	}
	now = t0.Add(90 * time.Minute) // jwt-of-g1 has expired, cc-jwt has not
	if _, err := s.Sweep(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := s.revoked.len(); n != 2 {
		t.Errorf("%d ids in memory after the first token expired, want 2", n)
	}
	now = t0.Add(3 * time.Hour)
	if revoked, _ := s.IsJTIRevoked(ctx, "cc-jwt"); revoked {
		t.Error("an expired token's id is still reported revoked")
	}
	if _, err := s.Sweep(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := s.revoked.len(); n != 1 {
		t.Errorf("%d ids in memory, want only the one that never expires", n)
	}
}
