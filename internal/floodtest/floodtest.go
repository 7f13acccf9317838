// Package floodtest measures what a flood of unique inputs costs in
// memory, for the tests that prove each request-fed structure bounded
// (docs/security-floods.md).
package floodtest

import (
	"runtime"
	"testing"
)

// MaxGrowth is the live-heap growth a flood may cause: generous for every
// capped structure of this module at its cap, far below what any of them
// would hold were it unbounded under the floods the tests send.
const MaxGrowth = 64 << 20

// samples is how many times during a flood the live heap is measured.
const samples = 16

// N is full, or underRace when the race detector is on: it slows a flood
// some tenfold, so a test under -race sends fewer inputs, still past the
// cap of the structure it floods.
func N(full, underRace int) int {
	if race {
		return underRace
	}
	return full
}

// Measure calls send(i) for every i in [0, n) and returns the largest
// growth of the live heap (HeapInuse right after a GC) over its level
// before the flood, sampled at 16 evenly spaced points and at the end.
// Measuring after a GC counts what the flood left reachable, not garbage
// waiting for the collector.
func Measure(n int, send func(i int)) (peak uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	sample := func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > base {
			peak = max(peak, ms.HeapInuse-base)
		}
	}
	step := max(n/samples, 1)
	for i := range n {
		send(i)
		if (i+1)%step == 0 {
			sample()
		}
	}
	sample()
	return peak
}

// Check logs the peak growth of a flood of n inputs into what, and fails
// tb when it is MaxGrowth or more.
func Check(tb testing.TB, what string, n int, peak uint64) {
	tb.Helper()
	tb.Logf("flood of %d unique inputs into %s: peak live heap growth %.1f MiB", n, what, float64(peak)/(1<<20))
	if peak >= MaxGrowth {
		tb.Errorf("a flood of %d unique inputs into %s grew the live heap by %.1f MiB, past the %d MiB bound: it is not bounded",
			n, what, float64(peak)/(1<<20), MaxGrowth>>20)
	}
}
