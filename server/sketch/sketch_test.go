package sketch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func exact(sorted []int64, q float64) float64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return float64(sorted[max(rank, 1)-1])
}

func TestQuantile_WithinRelativeErrorOfNearestRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 100, 10000} {
		var h Histogram
		vals := make([]int64, n)
		for i := range vals {
			vals[i] = int64(3e6 * math.Exp(1.2*rng.NormFloat64())) // ~3 ms, long-tailed
			h.Add(vals[i])
		}
		slices.Sort(vals)
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 1} {
			got, want := h.Quantile(q), exact(vals, q)
			if rel := math.Abs(got-want) / want; rel > RelativeError+1e-9 {
				t.Errorf("n=%d q=%.2f: estimate %.0f, exact %.0f (%.2f%% off)", n, q, got, want, 100*rel)
			}
		}
	}
}

func TestMerge_EqualsOneHistogramOfAllValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, merged Histogram
	for part := 0; part < 20; part++ {
		var h Histogram
		for i := 0; i < 50; i++ {
			v := rng.Int64N(int64(1e9)) + 1
			h.Add(v)
			all.Add(v)
		}
		decoded, err := Decode(h.Encode())
		if err != nil {
			t.Fatal(err)
		}
		merged.Merge(decoded)
	}
	if merged.Count() != all.Count() {
		t.Fatalf("count %d, want %d", merged.Count(), all.Count())
	}
	for _, q := range []float64{0.01, 0.5, 0.99} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q=%.2f: merged %.0f, direct %.0f", q, merged.Quantile(q), all.Quantile(q))
		}
	}
}

func TestCountAbove_CountsBucketsAboveTheValue(t *testing.T) {
	var h Histogram
	for _, v := range []int64{1e6, 2e6, 3e6, 100e6, 200e6} {
		h.Add(v)
	}
	if got := h.CountAbove(50e6); got != 2 {
		t.Fatalf("CountAbove(50ms) = %d, want 2", got)
	}
	if got := h.CountAbove(1); got != 5 {
		t.Fatalf("CountAbove(1ns) = %d, want 5", got)
	}
}

func TestAddEncoded_RejectsCorruptInput(t *testing.T) {
	var h Histogram
	for _, b := range [][]byte{{9}, {encodingV1, 0x80}, {encodingV1, 0xff, 0xff, 0x7f, 1}} {
		if err := h.AddEncoded(b); err == nil {
			t.Errorf("AddEncoded(%v) accepted corrupt input", b)
		}
	}
}

func TestZeroAndTinyValues_ShareTheFirstBucket(t *testing.T) {
	var h Histogram
	h.Add(0)
	h.Add(-5)
	h.Add(1)
	if h.Count() != 3 || h.Quantile(1) != 1 {
		t.Fatalf("count %d max %.1f, want 3 values in bucket 0", h.Count(), h.Quantile(1))
	}
}

func TestMergeAndReset_HandleDisjointRangesAndReuse(t *testing.T) {
	var low, high, h Histogram
	low.Add(1e3)
	high.Add(1e9)
	h.Merge(&high)
	h.Merge(&low)
	if h.Count() != 2 || h.Quantile(0.5) > 1.1e3 || h.Quantile(1) < 0.98e9 {
		t.Fatalf("merged: count %d, median %.0f, max %.0f", h.Count(), h.Quantile(0.5), h.Quantile(1))
	}
	h.Reset()
	h.Add(5e6)
	if h.Count() != 1 || math.Abs(h.Quantile(1)-5e6)/5e6 > RelativeError {
		t.Fatalf("after Reset: count %d, value %.0f", h.Count(), h.Quantile(1))
	}
}

// BenchmarkDecodeAndMerge is the work of get_service_metrics per hourly rollup row: decode it once
// and add it to its time bucket and its operation.
func BenchmarkDecodeAndMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	var enc [][]byte
	for range 64 {
		var h Histogram
		for range 3600 {
			h.Add(int64(40e6 * math.Exp(rng.NormFloat64())))
		}
		enc = append(enc, h.Encode())
	}
	var scratch, bucket, op Histogram
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		scratch.Reset()
		if err := scratch.AddEncoded(enc[i%len(enc)]); err != nil {
			b.Fatal(err)
		}
		bucket.Merge(&scratch)
		op.Merge(&scratch)
	}
}
