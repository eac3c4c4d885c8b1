package anomaly

import (
	"math"
	"sort"
)

// binomialUpper is P(K >= k) for K ~ Binomial(n, p): how surprising k or more "bad" requests out of
// n are when each is bad with probability p. Terms are summed in log space from k upwards until
// they stop mattering, so large n costs little.
func binomialUpper(k, n int64, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	case float64(k) <= float64(n)*p:
		return 1 // at or below expectation: not an upward deviation
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	logTerm := lchoose(n, k) + float64(k)*lp + float64(n-k)*lq
	sum := 0.0
	for i := k; i <= n; i++ {
		t := math.Exp(logTerm)
		sum += t
		if t < sum*1e-12 {
			break
		}
		// term(i+1)/term(i) = (n-i)/(i+1) · p/q
		logTerm += math.Log(float64(n-i)) - math.Log(float64(i+1)) + lp - lq
	}
	return math.Min(1, sum)
}

func lchoose(n, k int64) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// surprise converts a tail probability into a score: -log10 p, capped so that products of tiny
// probabilities stay finite.
func surprise(p float64) float64 {
	if p <= 1e-300 {
		return 300
	}
	return -math.Log10(p)
}

// medianMAD returns the median and the median absolute deviation of xs.
func medianMAD(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	med := median(s)
	for i, x := range s {
		s[i] = math.Abs(x - med)
	}
	sort.Float64s(s)
	return med, median(s)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
