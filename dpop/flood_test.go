package dpop

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/floodtest"
)

// TestFloodUniqueProofsBounded: a million unique proofs (distinct jtis of
// one key, all within the iat window) into the replay cache of the size a
// Verifier makes for itself — the one the token endpoint, userinfo and the
// API guard use unless configured otherwise. It keeps DefaultReplayEntries
// and refuses the rest (ErrReplayCacheFull) rather than evicting a live
// jti, whose replay would then pass; once the window is over, expired
// entries make room again.
func TestFloodUniqueProofsBounded(t *testing.T) {
	n := floodtest.N(1_000_000, 200_000)
	c := NewReplayCache(0)
	until := t0.Add(DefaultMaxAge)
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	var accepted, full int
	peak := floodtest.Measure(n, func(i int) {
		switch err := c.Record(replayKey(jkt, fmt.Sprint(i)), until, t0); {
		case err == nil:
			accepted++
		case errors.Is(err, ErrReplayCacheFull):
			full++
		default:
			t.Fatalf("proof %d: %v", i, err)
		}
	})
	if live := c.Len(t0); live != DefaultReplayEntries || accepted != DefaultReplayEntries || full != n-DefaultReplayEntries {
		t.Errorf("%d live entries, %d accepted, %d refused as full; want the cap %d, and the rest refused",
			live, accepted, full, DefaultReplayEntries)
	}
	// Every proof the cache took is still refused as a replay.
	if err := c.Record(replayKey(jkt, "0"), until, t0.Add(time.Second)); !errors.Is(err, ErrReplayed) {
		t.Errorf("the first proof of the flood replayed: %v, want ErrReplayed", err)
	}
	floodtest.Check(t, "the DPoP replay cache", n, peak)

	later := until.Add(time.Second)
	if err := c.Record(replayKey(jkt, "after"), later.Add(DefaultMaxAge), later); err != nil {
		t.Errorf("after the flood's window: %v", err)
	}
	if live := c.Len(later); live != 1 {
		t.Errorf("%d live entries after the flood's window, want 1", live)
	}
}
