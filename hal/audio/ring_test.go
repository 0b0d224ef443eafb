package audio

import (
	"slices"
	"testing"
)

func seq(from, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(from + i)
	}
	return s
}

func TestRing(t *testing.T) {
	tests := []struct {
		name        string
		capacity    int
		pushes      [][]int16
		wantDropped int
		want        []int16
	}{
		{"empty", 4, nil, 0, nil},
		{"fits", 4, [][]int16{seq(1, 3)}, 0, seq(1, 3)},
		{"exactly full", 4, [][]int16{seq(1, 2), seq(3, 2)}, 0, seq(1, 4)},
		{"drops oldest", 4, [][]int16{seq(1, 3), seq(4, 3)}, 2, seq(3, 4)},
		{"one push larger than capacity", 4, [][]int16{seq(1, 2), seq(3, 7)}, 5, seq(6, 4)},
		{"wraps", 5, [][]int16{seq(1, 4), seq(5, 4), seq(9, 2)}, 5, seq(6, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRing(tt.capacity)
			dropped := 0
			for _, p := range tt.pushes {
				dropped += r.push(p)
			}
			if dropped != tt.wantDropped {
				t.Fatalf("push dropped %d, want %d", dropped, tt.wantDropped)
			}
			got := make([]int16, tt.capacity+3)
			n := r.pop(got)
			if !slices.Equal(got[:n], tt.want) {
				t.Fatalf("pop = %v, want %v", got[:n], tt.want)
			}
			if r.n != 0 || r.free() != tt.capacity {
				t.Fatalf("after draining: n=%d free=%d, want 0 and %d", r.n, r.free(), tt.capacity)
			}
		})
	}
}

// TestRingInterleaved checks FIFO order across many wrap-arounds against a
// plain slice model, with pops of varying sizes.
func TestRingInterleaved(t *testing.T) {
	r := newRing(7)
	var model []int16
	next := 0
	buf := make([]int16, 5)
	for i := 0; i < 200; i++ {
		k := i%4 + 1
		p := seq(next, k)
		next += k
		model = append(model, p...)
		dropped := r.push(p)
		if len(model) > 7 {
			if want := len(model) - 7; dropped != want {
				t.Fatalf("step %d: push dropped %d, want %d", i, dropped, want)
			}
			model = model[len(model)-7:]
		}
		n := r.pop(buf[:i%3+1])
		if !slices.Equal(buf[:n], model[:n]) {
			t.Fatalf("step %d: pop = %v, want %v", i, buf[:n], model[:n])
		}
		model = model[n:]
	}
}
