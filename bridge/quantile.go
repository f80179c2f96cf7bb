package bridge

// Quantile is the one percentile rule of the project (the heartbeat's
// latencies, `depot bench`, the benchmarks): the nearest-rank q-quantile
// (0 ≤ q ≤ 1) of sorted, an ascending slice, which is
// sorted[min(n-1, ⌊q·n⌋)]; 0 for no samples.
func Quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(q * float64(n))
	return sorted[max(0, min(n-1, i))]
}
