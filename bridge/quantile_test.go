package bridge

import "testing"

func TestQuantile(t *testing.T) {
	s := make([]float64, 100)
	for i := range s {
		s[i] = float64(i + 1) // 1…100
	}
	for _, c := range []struct {
		q, want float64
	}{{0, 1}, {0.5, 51}, {0.95, 96}, {0.99, 100}, {1, 100}, {-1, 1}} {
		if got := Quantile(s, c.q); got != c.want {
			t.Errorf("Quantile(1…100, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := Quantile(nil, 0.5); got != 0 {
		t.Errorf("Quantile(nil) = %v", got)
	}
	if got := Quantile([]float64{7}, 0.99); got != 7 {
		t.Errorf("Quantile([7], 0.99) = %v", got)
	}
}
