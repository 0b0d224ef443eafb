package anomaly

import (
	"math"
	"testing"
)

func TestMedianMAD(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       []float64
		med, mad float64
	}{
		{"empty", nil, 0, 0},
		{"one", []float64{7}, 7, 0},
		{"odd", []float64{3, 1, 2}, 2, 1},
		{"even", []float64{1, 2, 3, 4}, 2.5, 1},
		// One outlier (a holiday's zero, a fraud hour's 60) moves neither.
		{"outlier low", []float64{10, 11, 0, 12, 10, 9, 11, 10, 12, 10, 11, 9}, 10, 1},
		{"outlier high", []float64{10, 11, 60, 12, 10, 9, 11, 10, 12, 10, 11, 9}, 10.5, 0.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			med, mad := medianMAD(append([]float64(nil), tt.in...))
			if med != tt.med || mad != tt.mad {
				t.Fatalf("medianMAD(%v) = %v, %v, want %v, %v", tt.in, med, mad, tt.med, tt.mad)
			}
		})
	}
}

func TestCountScale(t *testing.T) {
	for _, tt := range []struct{ med, mad, want float64 }{
		{0, 0, 1},            // a quiet hour: one call is not a deviation of infinity
		{16, 0, 4},           // Poisson: √16
		{4, 3, madScale * 3}, // a spread wider than Poisson
		{100, 2, 10},         // Poisson wider than the MAD
	} {
		if got := countScale(tt.med, tt.mad); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("countScale(%v, %v) = %v, want %v", tt.med, tt.mad, got, tt.want)
		}
	}
}

func TestEWMA(t *testing.T) {
	var e ewma
	for range 2000 {
		e.update(2, 0.01)
	}
	if math.Abs(e.Mean-2) > 1e-6 || e.Dev > 1e-6 {
		t.Fatalf("ewma after a constant 2 = %+v, want mean 2, deviation 0", e)
	}
	// A spike is judged against the band before it: the deviation
	// grows by alpha times its distance from the old mean.
	e.update(12, 0.01)
	if want := 0.01 * 10; math.Abs(e.Dev-want) > 1e-6 {
		t.Fatalf("ewma deviation after a spike of 10 = %v, want %v", e.Dev, want)
	}
}

func TestIdle(t *testing.T) {
	for _, tt := range []struct {
		name string
		vals []float64
		want bool
	}{
		{"one week is too little", []float64{0, 0, 0}, false},
		{"two quiet weeks", []float64{0, 0, 0, 0, 0, 0}, true},
		{"two weeks, one call", []float64{0, 1, 0, 0, 0, 0}, false},
		{"four weeks, one call", []float64{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true},
		{"four weeks, two calls", []float64{0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r refs
			for _, v := range tt.vals {
				r.add(v)
			}
			if got := r.idle(); got != tt.want {
				t.Fatalf("idle(%v) = %v, want %v", tt.vals, got, tt.want)
			}
		})
	}
}
