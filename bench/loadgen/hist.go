package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 1<<subBits buckets per power of two, so a
// recorded value is reported within 1/64 (1.6%) of itself, from 1 ns to hours.
const (
	subBits  = 6
	subCount = 1 << subBits
	nBuckets = (64 - subBits + 1) * subCount
)

// Histogram is a log-linear latency histogram in the manner of HdrHistogram: fixed memory,
// O(1) recording, mergeable. It is not safe for concurrent use; give each worker its own
// and Merge them.
type Histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      uint64
	min, max uint64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)*subCount + int(v>>uint(shift)) - subCount
}

// bucketValue is the middle of a bucket's range.
func bucketValue(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := uint(i/subCount - 1)
	low := uint64(i%subCount+subCount) << shift
	return low + (uint64(1)<<shift)/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Mean is the exact mean.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Max is the exact largest value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the value at q (0 < q <= 1): the smallest recorded value v such that
// at least q of the values are <= v, within the histogram's precision and clamped to the
// exact minimum and maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := min(max(bucketValue(i), h.min), h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
