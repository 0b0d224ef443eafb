package media

import (
	"slices"
	"testing"
)

func seqs(ps []jbPacket) []int {
	var out []int
	for _, p := range ps {
		if p.payload == nil {
			out = append(out, -int(p.seq)) // concealed frame
			continue
		}
		out = append(out, int(p.seq))
	}
	return out
}

func TestJitterBuffer(t *testing.T) {
	tests := []struct {
		name     string
		in       []uint16
		wantOut  []int
		wantLate int
	}{
		{"in order", []uint16{10, 11, 12, 13, 14}, []int{10, 11}, 0},
		{"reordered", []uint16{10, 12, 11, 14, 13, 15}, []int{10, 11, 12}, 0},
		{"duplicate", []uint16{10, 11, 11, 12, 13}, []int{10}, 1},
		{"late", []uint16{10, 11, 12, 13, 14, 10}, []int{10, 11}, 1},
		{"gap concealed", []uint16{10, 13, 14, 15, 16}, []int{10, -11, -12, 13}, 0},
		{"wrap", []uint16{65534, 65535, 0, 1, 2}, []int{65534, 65535}, 0},
		{"jump resets", []uint16{10, 11, 12, 13, 5000, 5001, 5002, 5003}, []int{10, 11, 12, 13, 5000}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var jb jitterBuffer
			var out []jbPacket
			late := 0
			for _, s := range tt.in {
				var l bool
				out, l = jb.push(1, jbPacket{seq: s, payload: []byte{byte(s)}}, out)
				if l {
					late++
				}
			}
			if got := seqs(out); !slices.Equal(got, tt.wantOut) || late != tt.wantLate {
				t.Fatalf("push(%v) released %v late %d, want %v late %d", tt.in, got, late, tt.wantOut, tt.wantLate)
			}
		})
	}
}

// TestJitterBufferNewSSRC: a new source flushes the old one in order.
func TestJitterBufferNewSSRC(t *testing.T) {
	var jb jitterBuffer
	var out []jbPacket
	for _, s := range []uint16{1, 3, 2} {
		out, _ = jb.push(7, jbPacket{seq: s, payload: []byte{1}}, out)
	}
	out, _ = jb.push(8, jbPacket{seq: 900, payload: []byte{1}}, out)
	if got := seqs(out); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("after SSRC change released %v, want [1 2 3]", got)
	}
}
