package loadgen

import (
	"math/rand"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<63 + 1} {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d, below %d", v, b, prev)
		}
		if b >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, beyond %d buckets", v, b, nBuckets)
		}
		prev = b
	}
	for i := range nBuckets {
		if got := bucketOf(bucketValue(i)); got != i {
			t.Fatalf("bucket %d: its middle value %d falls in bucket %d", i, bucketValue(i), got)
		}
	}
}

// Quantiles agree with exact sorted samples within the histogram's precision.
func TestQuantilesMatchSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h, a, b Histogram
	var xs []time.Duration
	for i := range 100_000 {
		d := time.Duration(rng.ExpFloat64() * float64(300*time.Microsecond))
		xs = append(xs, d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	h.Merge(&a)
	h.Merge(&b)
	slices.Sort(xs)
	if h.Count() != uint64(len(xs)) || h.Max() != xs[len(xs)-1] {
		t.Fatalf("count %d max %v, want %d %v", h.Count(), h.Max(), len(xs), xs[len(xs)-1])
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := xs[int(q*float64(len(xs))+0.999999)-1]
		got := h.Quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.02 || diff < -0.02 {
			t.Errorf("q%v = %v, exact %v", q, got, exact)
		}
	}
}
