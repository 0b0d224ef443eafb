package anomaly

import (
	"math"
	"slices"
)

// maxRef is the most reference values a baseline looks at: the same hour
// of the week and the hours beside it (3), in each of the last 4 weeks.
const maxRef = 12

// refs is a small fixed set of reference values, kept on the stack.
type refs struct {
	v [maxRef]float64
	n int
}

func (r *refs) add(x float64) {
	if r.n < maxRef {
		r.v[r.n] = x
		r.n++
	}
}

// nonzero counts the values above zero.
func (r *refs) nonzero() int {
	k := 0
	for _, x := range r.v[:r.n] {
		if x > 0 {
			k++
		}
	}
	return k
}

// idleRefs is how many reference hours an hour needs before it can be
// called idle: two weeks' worth (the same hour and the hours beside it).
const idleRefs = 6

// idle reports whether the reference hours say the device does not call
// at this hour of the week: at least idleRefs of them, and at most one in
// twelve with a call (none of fewer than 12: one stray evening call in
// four weeks is not a habit, one in two weeks might be).
func (r *refs) idle() bool {
	return r.n >= idleRefs && r.nonzero()*maxRef <= r.n
}

// medianMAD returns the median of v and the median of the absolute
// deviations from it (MAD). It reorders v. (0, 0) for an empty v.
func medianMAD(v []float64) (med, mad float64) {
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	med = median(v)
	for i, x := range v {
		v[i] = math.Abs(x - med)
	}
	slices.Sort(v)
	return med, median(v)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// madScale turns a MAD into a standard deviation's equivalent for normal
// data (1/Φ⁻¹(3/4)).
const madScale = 1.4826

// countScale is the spread a baseline of counts uses: 1.4826·MAD, but at
// least √median (the standard deviation of a Poisson count with that
// mean: a MAD of 0 over 12 quiet weeks must not make one extra call an
// anomaly) and at least 1.
func countScale(med, mad float64) float64 {
	return max(madScale*mad, math.Sqrt(med), 1)
}

// ewma is an exponentially weighted moving average of a rate and of its
// absolute deviation (the EW analogue of the mean absolute deviation).
type ewma struct {
	Mean float64 `json:"mean"`
	Dev  float64 `json:"dev"`
}

// update folds x in with weight alpha: the deviation against the mean
// before x, so that a spike widens the band only after it was judged.
func (e *ewma) update(x, alpha float64) {
	e.Dev += alpha * (math.Abs(x-e.Mean) - e.Dev)
	e.Mean += alpha * (x - e.Mean)
}
