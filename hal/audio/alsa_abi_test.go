//go:build amd64 || arm64 || arm

package audio

import (
	"math"
	"testing"
	"unsafe"
)

// abiFacts are the sizes, offsets and request numbers of the kernel's
// include/uapi/sound/asound.h on one architecture, worked out from the C
// layout rules of its ABI (and matching what strace prints for alsa-lib's
// calls there). alsa_abi_{amd64,arm64,arm}_test.go hold one each; the
// tests below compare the Go structs and the computed requests with them.
type abiFacts struct {
	hwParamsSize, hwFifoSize, hwSync, hwReserved uintptr
	swParamsSize, swAvailMin, swStartThreshold   uintptr
	swBoundary, swProto, swReserved              uintptr
	xferiSize, xferiBuf, xferiFrames             uintptr
	requests                                     map[string][2]uintptr // name: {ours, kernel's}
}

// Offsets shared by every architecture: everything before the first
// unsigned long of snd_pcm_hw_params.
func TestALSAHwParamsCommonLayout(t *testing.T) {
	var hw sndPCMHwParams
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(snd_mask)", unsafe.Sizeof(sndMask{}), 32},
		{"sizeof(snd_interval)", unsafe.Sizeof(sndInterval{}), 12},
		{"masks", unsafe.Offsetof(hw.masks), 4},
		{"mres", unsafe.Offsetof(hw.mres), 100},
		{"intervals", unsafe.Offsetof(hw.intervals), 260},
		{"ires", unsafe.Offsetof(hw.ires), 404},
		{"rmask", unsafe.Offsetof(hw.rmask), 512},
		{"cmask", unsafe.Offsetof(hw.cmask), 516},
		{"info", unsafe.Offsetof(hw.info), 520},
		{"msbits", unsafe.Offsetof(hw.msbits), 524},
		{"rate_num", unsafe.Offsetof(hw.rateNum), 528},
		{"rate_den", unsafe.Offsetof(hw.rateDen), 532},
		{"fifo_size", unsafe.Offsetof(hw.fifoSize), 536},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("offsetof/sizeof %s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestALSAArchLayout(t *testing.T) {
	var hw sndPCMHwParams
	var sw sndPCMSwParams
	var x sndXferi
	w := wantABI
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(snd_pcm_hw_params)", unsafe.Sizeof(hw), w.hwParamsSize},
		{"sizeof(fifo_size)", unsafe.Sizeof(hw.fifoSize), w.hwFifoSize},
		{"hw sync", unsafe.Offsetof(hw.sync), w.hwSync},
		{"hw reserved", unsafe.Offsetof(hw.reserved), w.hwReserved},
		{"sizeof(snd_pcm_sw_params)", unsafe.Sizeof(sw), w.swParamsSize},
		{"sw avail_min", unsafe.Offsetof(sw.availMin), w.swAvailMin},
		{"sw start_threshold", unsafe.Offsetof(sw.startThreshold), w.swStartThreshold},
		{"sw boundary", unsafe.Offsetof(sw.boundary), w.swBoundary},
		{"sw proto", unsafe.Offsetof(sw.proto), w.swProto},
		{"sw reserved", unsafe.Offsetof(sw.reserved), w.swReserved},
		{"sizeof(snd_xferi)", unsafe.Sizeof(x), w.xferiSize},
		{"xferi buf", unsafe.Offsetof(x.buf), w.xferiBuf},
		{"xferi frames", unsafe.Offsetof(x.frames), w.xferiFrames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("%s = %d, want %d on this GOARCH", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestALSAIoctlNumbers(t *testing.T) {
	for name, r := range wantABI.requests {
		if r[0] != r[1] {
			t.Errorf("%s = %#x, want %#x", name, r[0], r[1])
		}
	}
}

func TestALSAAnyHWParams(t *testing.T) {
	p := anyHWParams()
	for i, m := range p.masks {
		for j, b := range m.bits {
			if b != math.MaxUint32 {
				t.Fatalf("masks[%d].bits[%d] = %#x, want all ones", i, j, b)
			}
		}
	}
	for i, iv := range p.intervals {
		if lo, hi, ok := iv.bounds(); !ok || lo != 0 || hi != math.MaxUint32 {
			t.Fatalf("intervals[%d].bounds() = %d, %d, %v, want 0, MaxUint32, true", i, lo, hi, ok)
		}
	}
	if p.rmask != math.MaxUint32 || p.cmask != 0 {
		t.Fatalf("rmask, cmask = %#x, %#x, want all ones, 0", p.rmask, p.cmask)
	}
}

func TestALSAMask(t *testing.T) {
	tests := []struct {
		param, v int
		word     int
		bits     uint32
	}{
		{hwParamAccess, accessRWInterleaved, 0, 1 << 3},
		{hwParamFormat, formatS16LE, 0, 1 << 2},
		{hwParamSubformat, subformatStd, 0, 1},
		{hwParamFormat, 45, 1, 1 << 13}, // a format past the first word
	}
	for _, tt := range tests {
		p := anyHWParams()
		p.rmask = 0
		p.setMask(tt.param, tt.v)
		m := p.masks[tt.param]
		for w, b := range m.bits {
			want := uint32(0)
			if w == tt.word {
				want = tt.bits
			}
			if b != want {
				t.Fatalf("setMask(%d, %d): bits[%d] = %#x, want %#x", tt.param, tt.v, w, b, want)
			}
		}
		if !p.maskHas(tt.param, tt.v) || p.maskHas(tt.param, tt.v+1) {
			t.Fatalf("maskHas after setMask(%d, %d) wrong", tt.param, tt.v)
		}
		if p.rmask != 1<<tt.param {
			t.Fatalf("setMask(%d, %d): rmask = %#x, want %#x", tt.param, tt.v, p.rmask, 1<<tt.param)
		}
	}
}

func TestALSAInterval(t *testing.T) {
	p := anyHWParams()
	p.rmask = 0
	p.setInterval(hwParamRate, 16000, 16000)
	// The raw words the kernel reads: min, max, then the bit-field word
	// with integer (bit 2) set and openmin/openmax/empty clear.
	off := unsafe.Offsetof(p.intervals) + uintptr(hwParamRate-hwParamFirstInterval)*12
	words := (*[3]uint32)(unsafe.Add(unsafe.Pointer(p), off))
	if *words != [3]uint32{16000, 16000, 4} {
		t.Fatalf("rate interval words = %v, want [16000 16000 4]", *words)
	}
	if p.rmask != 1<<hwParamRate {
		t.Fatalf("rmask = %#x, want bit %d", p.rmask, hwParamRate)
	}
	tests := []struct {
		name   string
		iv     sndInterval
		lo, hi uint32
		ok     bool
		single bool
	}{
		{"closed", sndInterval{min: 160, max: 320}, 160, 320, true, false},
		{"single", sndInterval{min: 320, max: 320, flags: intervalInteger}, 320, 320, true, true},
		{"open min", sndInterval{min: 159, max: 320, flags: intervalOpenMin}, 160, 320, true, false},
		{"open max", sndInterval{min: 160, max: 321, flags: intervalOpenMax}, 160, 320, true, false},
		{"open both to one", sndInterval{min: 319, max: 321, flags: intervalOpenMin | intervalOpenMax}, 320, 320, true, true},
		{"empty flag", sndInterval{min: 1, max: 2, flags: intervalEmpty}, 0, 0, false, false},
		{"inverted", sndInterval{min: 5, max: 4}, 0, 0, false, false},
		{"open at the top", sndInterval{min: math.MaxUint32, max: math.MaxUint32, flags: intervalOpenMin}, 0, 0, false, false},
		{"open at zero", sndInterval{min: 0, max: 0, flags: intervalOpenMax}, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi, ok := tt.iv.bounds()
			if ok != tt.ok || (ok && (lo != tt.lo || hi != tt.hi)) {
				t.Fatalf("bounds(%+v) = %d, %d, %v, want %d, %d, %v", tt.iv, lo, hi, ok, tt.lo, tt.hi, tt.ok)
			}
			if _, single := tt.iv.single(); single != tt.single {
				t.Fatalf("single(%+v) = %v, want %v", tt.iv, single, tt.single)
			}
		})
	}
}

func TestALSAProtocolMajor(t *testing.T) {
	// SNDRV_PCM_VERSION is SNDRV_PROTOCOL_VERSION(2, 0, 18) in Linux 6.x.
	if got := sndrvProtocolMajor(2<<16 | 0<<8 | 18); got != 2 {
		t.Fatalf("sndrvProtocolMajor(2.0.18) = %d, want 2", got)
	}
}
