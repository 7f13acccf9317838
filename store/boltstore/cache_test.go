package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/store"
)

// TestCachedClientsAreCopiesAndFollowWrites: a caller changing the client
// it got changes nothing for the next caller, and every write — also one
// racing readers — is what the next read returns.
func TestCachedClientsAreCopiesAndFollowWrites(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutClient(ctx, &store.Client{ID: "app", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	first, err := s.GetClient(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	first.Scopes[0] = "admin"
	again, _ := s.GetClient(ctx, "app")
	if again.Scopes[0] != "read" {
		t.Fatalf("a caller's change reached the cache: %v", again.Scopes)
	}

	// Writers and readers race; after the last write, reads agree with it.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				c := &store.Client{ID: "app", Scopes: []string{fmt.Sprintf("w%d-%d", w, i)}}
				if err := s.PutClient(ctx, c); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			for range 200 {
				if _, err := s.GetClient(ctx, "app"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.PutClient(ctx, &store.Client{ID: "app", Scopes: []string{"final"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if c, _ := s.GetClient(ctx, "app"); c.Scopes[0] != "final" {
			t.Fatalf("read %v after the last write", c.Scopes)
		}
	}
	if err := s.DeleteClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(ctx, "app"); err != store.ErrNotFound {
		t.Fatalf("GetClient after delete: %v", err)
	}

	if err := s.PutAPI(ctx, &store.API{Identifier: "https://api", Scopes: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	api, _ := s.GetAPI(ctx, "https://api")
	api.Scopes[0] = "b"
	if api, _ := s.GetAPI(ctx, "https://api"); api.Scopes[0] != "a" {
		t.Fatalf("a caller's change reached the API cache: %v", api.Scopes)
	}
	if err := s.DeleteAPI(ctx, "https://api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAPI(ctx, "https://api"); err != store.ErrNotFound {
		t.Fatalf("GetAPI after delete: %v", err)
	}
}
