// Package sketch is a mergeable latency histogram: logarithmic buckets whose width bounds the relative
// error of any quantile, so per-minute histograms can be summed into any window and still answer
// p50…p99 within 1 % of the exact value (the DDSketch idea, with a dense bucket array).
package sketch

import (
	"encoding/binary"
	"errors"
	"math"
)

// RelativeError bounds |estimate-exact|/exact for every quantile.
const RelativeError = 0.01

var (
	gamma    = (1 + RelativeError) / (1 - RelativeError)
	logGamma = math.Log(gamma)
)

// maxKey caps bucket keys; gamma^maxKey nanoseconds is centuries.
const maxKey = 4095

// Key is the bucket of v (nanoseconds, or any positive quantity): the k with gamma^(k-1) < v <= gamma^k.
// Values at or below 1 share bucket 0.
func Key(v int64) int {
	if v <= 1 {
		return 0
	}
	k := int(math.Ceil(math.Log(float64(v)) / logGamma))
	return min(k, maxKey)
}

// Value is the representative of bucket k: the point whose relative distance to both bucket edges is
// RelativeError.
func Value(k int) float64 {
	if k == 0 {
		return 1
	}
	return 2 * math.Pow(gamma, float64(k)) / (gamma + 1)
}

// Histogram counts values by bucket. The zero value is empty and ready to use.
type Histogram struct {
	lo     int      // key of counts[0]
	counts []uint64 // dense from lo; grows both ways as keys arrive
	n      uint64
}

// Add counts one value.
func (h *Histogram) Add(v int64) { h.AddKey(Key(v), 1) }

// AddKey counts c values in bucket k.
func (h *Histogram) AddKey(k int, c uint64) {
	switch {
	case len(h.counts) == 0:
		h.lo = k
		h.counts = append(h.counts[:0], c)
		h.n = c
		return
	case k < h.lo:
		grown := make([]uint64, len(h.counts)+h.lo-k, len(h.counts)+h.lo-k+8)
		copy(grown[h.lo-k:], h.counts)
		h.counts, h.lo = grown, k
	case k >= h.lo+len(h.counts):
		// Extend in place: keys mostly arrive in ascending order, one slot past the end at a time.
		n, old := k-h.lo+1, len(h.counts)
		if n > cap(h.counts) {
			h.counts = append(h.counts[:cap(h.counts)], make([]uint64, max(n, 2*cap(h.counts))-cap(h.counts))...)
		}
		h.counts = h.counts[:n]
		clear(h.counts[old:])
	}
	h.counts[k-h.lo] += c
	h.n += c
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if len(o.counts) == 0 {
		return
	}
	// Widen h once to cover o, then add slot by slot.
	h.AddKey(o.lo, 0)
	h.AddKey(o.lo+len(o.counts)-1, 0)
	dst := h.counts[o.lo-h.lo:]
	for i, c := range o.counts {
		dst[i] += c
	}
	h.n += o.n
}

// Reset empties h, keeping its memory for reuse.
func (h *Histogram) Reset() {
	h.counts, h.n = h.counts[:0], 0
}

// Count is the number of values added.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile estimates the nearest-rank q-quantile (0 < q <= 1): the value of rank ceil(q·n) in sorted
// order, which is also what the exact SQL percentiles compute. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(1, min(rank, h.n))
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return Value(h.lo + i)
		}
	}
	return Value(h.lo + len(h.counts) - 1)
}

// CountAbove estimates how many values exceed v: it counts the buckets entirely above v's bucket, so
// it errs low by at most the values sharing v's bucket.
func (h *Histogram) CountAbove(v int64) uint64 {
	k := Key(v)
	var n uint64
	for i := max(0, k+1-h.lo); i < len(h.counts); i++ {
		n += h.counts[i]
	}
	return n
}

// encodingV1 starts every encoded histogram, so the format can change without a migration.
const encodingV1 = 1

// Encode returns a compact form: a version byte, then for each non-empty bucket the key's distance
// from the previous one and its count, as unsigned varints. A minute of one operation is tens of bytes.
func (h *Histogram) Encode() []byte {
	b := make([]byte, 1, 1+4*len(h.counts))
	b[0] = encodingV1
	prev := 0
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		k := h.lo + i
		b = binary.AppendUvarint(b, uint64(k-prev))
		b = binary.AppendUvarint(b, c)
		prev = k
	}
	return b
}

var errCorrupt = errors.New("sketch: corrupt histogram encoding")

// AddEncoded merges an encoded histogram into h.
func (h *Histogram) AddEncoded(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if b[0] != encodingV1 {
		return errCorrupt
	}
	b = b[1:]
	k := 0
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 {
			return errCorrupt
		}
		b = b[n:]
		c, n := binary.Uvarint(b)
		if n <= 0 {
			return errCorrupt
		}
		b = b[n:]
		k += int(d)
		if k > maxKey {
			return errCorrupt
		}
		// Keys ascend, so after the first few the slot usually exists already.
		if i := k - h.lo; i >= 0 && i < len(h.counts) {
			h.counts[i] += c
			h.n += c
			continue
		}
		h.AddKey(k, c)
	}
	return nil
}

// Decode returns the histogram of an encoding.
func Decode(b []byte) (*Histogram, error) {
	h := &Histogram{}
	return h, h.AddEncoded(b)
}
