package sim

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// rng draws from a PCG (whose output sequence is fixed by its
// definition); the distributions are written here rather than taken from
// math/rand/v2 so that the stream cannot change with a Go release.
type rng struct{ p *rand.PCG }

func newRNG(seed, stream uint64) *rng { return &rng{p: rand.NewPCG(seed, stream)} }

// intn returns a uniform integer in [0, n) (Lemire's multiply; the bias
// for n far below 2^64 is negligible for a simulation).
func (r *rng) intn(n int) int {
	if n <= 0 {
		return 0
	}
	hi, _ := bits.Mul64(r.p.Uint64(), uint64(n))
	return int(hi)
}

// between returns a uniform integer in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// float returns a uniform float64 in [0, 1).
func (r *rng) float() float64 { return float64(r.p.Uint64()>>11) / (1 << 53) }

// chance returns true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// exp returns an exponential variate with the given mean.
func (r *rng) exp(mean float64) float64 { return -mean * math.Log(1-r.float()) }

// normal returns a standard normal variate (Box-Muller).
func (r *rng) normal() float64 {
	u1 := 1 - r.float()
	u2 := r.float()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// poisson returns a Poisson variate with mean lambda (Knuth's product
// method; the means here are small).
func (r *rng) poisson(lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 60 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.normal())))
	}
	l := math.Exp(-lambda)
	k, p := 0, 1.0
	for {
		p *= r.float()
		if p <= l {
			return k
		}
		k++
	}
}

// digits returns n random decimal digits.
func (r *rng) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.intn(10))
	}
	return string(b)
}

// pick returns a uniform element of s.
func pick[T any](r *rng, s []T) T { return s[r.intn(len(s))] }
