package dpop

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReplayCacheRemembersUntilExpiry(t *testing.T) {
	c := NewReplayCache(10)
	until := t0.Add(time.Minute)
	if c.Seen("a", until, t0) {
		t.Fatal("a new key was seen")
	}
	cases := []struct {
		name string
		now  time.Time
		seen bool
	}{
		{"right after", t0.Add(time.Second), true},
		{"just before expiry", until.Add(-time.Nanosecond), true},
	}
	for _, tc := range cases {
		if got := c.Seen("a", until, tc.now); got != tc.seen {
			t.Errorf("%s: seen %v, want %v", tc.name, got, tc.seen)
		}
	}
	// At its expiry the entry is gone, so the key is new again (a proof
	// that old fails its iat check before it gets here).
	if c.Seen("a", until.Add(time.Minute), until) {
		t.Error("an expired key is still seen")
	}
	if c.Seen("past", t0, t0) || c.Len(t0) != 1 {
		t.Errorf("a key already expired on arrival was kept (%d entries)", c.Len(t0))
	}
}

// TestReplayCacheFailsClosedWhenFull: a flood of proofs must neither grow
// memory nor push out a live entry to let its replay through.
func TestReplayCacheFailsClosedWhenFull(t *testing.T) {
	c := NewReplayCache(3)
	victim := "victim"
	if err := c.Record(victim, t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Record(fmt.Sprint("flood", i), t0.Add(2*time.Minute), t0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if err := c.Record(fmt.Sprint("more", i), t0.Add(2*time.Minute), t0); !errors.Is(err, ErrReplayCacheFull) {
			t.Fatalf("flood entry %d: %v, want ErrReplayCacheFull", i, err)
		}
	}
	if !c.Seen(victim, t0.Add(time.Minute), t0.Add(time.Second)) {
		t.Fatal("the flood pushed out a live entry: its replay would pass")
	}
	if n := c.Len(t0); n != 3 {
		t.Errorf("%d entries, want the bound 3", n)
	}
	// Once the victim expires there is room again.
	if err := c.Record("later", t0.Add(3*time.Minute), t0.Add(time.Minute)); err != nil {
		t.Errorf("after an entry expired: %v", err)
	}
}

func TestReplayCacheCollectsExpiredEntries(t *testing.T) {
	c := NewReplayCache(1000)
	for i := range 1000 {
		c.Record(fmt.Sprint(i), t0.Add(time.Duration(i+1)*time.Second), t0)
	}
	if n := c.Len(t0.Add(500 * time.Second)); n != 500 {
		t.Errorf("%d live entries at +500s, want 500", n)
	}
	if n, h := len(c.until), len(c.expires); n != 500 || h != 500 {
		t.Errorf("expired entries not collected: map %d, heap %d", n, h)
	}
}

func TestReplayCacheAdmitsAKeyOnceUnderConcurrency(t *testing.T) {
	c := NewReplayCache(100)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 32 {
		wg.Go(func() {
			<-start
			if !c.Seen("jti", t0.Add(time.Minute), t0) {
				admitted.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := admitted.Load(); n != 1 {
		t.Errorf("%d concurrent uses of one key admitted, want 1", n)
	}
}

func TestNonceSourceWindows(t *testing.T) {
	n := NewNonceSource(time.Minute)
	base := t0.Truncate(time.Minute)
	nonce := n.NonceAt(base.Add(10 * time.Second))
	if nonce != n.NonceAt(base.Add(50*time.Second)) {
		t.Error("two nonces in one window differ")
	}
	cases := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {59 * time.Second, true},
		{time.Minute, true}, {119 * time.Second, true}, // the next window accepts it
		{2 * time.Minute, false}, {-time.Second, false},
	}
	for _, tc := range cases {
		if got := n.ValidAt(nonce, base.Add(tc.at)); got != tc.want {
			t.Errorf("nonce of window 0 at %v: valid %v, want %v", tc.at, got, tc.want)
		}
	}
	if NewNonceSource(time.Minute).ValidAt(nonce, base) {
		t.Error("another source's key accepts the nonce")
	}
	for _, bad := range []string{"", "x", nonce + "A", nonce[:len(nonce)-1]} {
		if n.ValidAt(bad, base) {
			t.Errorf("%q accepted", bad)
		}
	}
	if len(nonce) < 22 {
		t.Errorf("nonce %q is short", nonce)
	}
	if !n.Valid(n.Nonce()) {
		t.Error("a fresh nonce is not valid")
	}

	key := make([]byte, 32)
	a, err := NewNonceSourceWithKey(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewNonceSourceWithKey(key, time.Minute)
	if !b.ValidAt(a.NonceAt(base), base) {
		t.Error("instances sharing a key do not accept each other's nonces")
	}
	if _, err := NewNonceSourceWithKey(key[:16], time.Minute); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}
