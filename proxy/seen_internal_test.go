package proxy

import (
	"fmt"
	"testing"
	"time"
)

func TestSeenTokensDropExpiredEntriesFirstAndStayBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var s seenTokens
	for i := range maxSeenTokens / 2 {
		s.add(fmt.Sprint("short-", i), now.Add(time.Minute), now)
		s.add(fmt.Sprint("long-", i), now.Add(time.Hour), now)
	}
	if s.add("long-0", now.Add(time.Hour), now.Add(time.Second)) {
		t.Fatal("a live entry was accepted again")
	}
	// Full: once the short-lived entries expire, they go and the live ones
	// stay.
	later := now.Add(2 * time.Minute)
	if !s.add("new", later.Add(time.Minute), later) {
		t.Fatal("a new entry was refused")
	}
	if n := len(s.seen); n != maxSeenTokens/2+1 {
		t.Errorf("%d entries after the sweep, want the %d live ones and the new one", n, maxSeenTokens/2+1)
	}
	for i := range maxSeenTokens / 2 {
		if s.add(fmt.Sprint("long-", i), now.Add(time.Hour), later) {
			t.Fatalf("live entry long-%d was forgotten by the sweep", i)
		}
	}
	// Full of live entries: new ones push out arbitrary ones, never past
	// the cap.
	for i := range 3 * maxSeenTokens {
		s.add(fmt.Sprint("flood-", i), later.Add(time.Hour), later)
		if len(s.seen) > maxSeenTokens {
			t.Fatalf("%d entries, past the cap %d", len(s.seen), maxSeenTokens)
		}
	}
}
