package audio

import (
	"math"
	"unsafe"
)

// The small part of the ALSA PCM kernel interface (Linux UAPI header
// include/uapi/sound/asound.h, protocol 2.0.x) that a blocking read/write
// client needs: no mmap, no status page, no timestamps.
//
// Layouts. C "unsigned long" (snd_pcm_uframes_t) and "long"
// (snd_pcm_sframes_t) are 8 bytes, 8-aligned on amd64 and arm64 (LP64) and
// 4 bytes on 32-bit arm (ILP32, EABI); Go's uint and int have exactly those
// sizes and alignments on each, so the Go structs below match the kernel's
// on all three without per-arch files. alsa_abi_*_test.go pins every size
// and offset per GOARCH.
//
// struct snd_pcm_hw_params               64-bit      32-bit
//
//	  0 unsigned int flags
//	  4 struct snd_mask masks[3]          (ACCESS, FORMAT, SUBFORMAT; 32 bytes each)
//	100 struct snd_mask mres[5]           reserved
//	260 struct snd_interval intervals[12] (SAMPLE_BITS .. TICK_TIME; 12 bytes each)
//	404 struct snd_interval ires[9]       reserved
//	512 unsigned int rmask                W: which parameters to refine
//	516 unsigned int cmask                R: which ones changed
//	520 unsigned int info                 R
//	524 unsigned int msbits               R
//	528 unsigned int rate_num, rate_den   R
//	536 snd_pcm_uframes_t fifo_size       8 bytes     4 bytes
//	    unsigned char sync[16]            @544        @540
//	    unsigned char reserved[48]        @560        @556
//	    sizeof                            608         604
//
// struct snd_mask     { __u32 bits[8]; }                      256 bits
// struct snd_interval { unsigned int min, max;
//
//	unsigned int openmin:1, openmax:1, integer:1, empty:1; }
//
// The bit-fields share one word; GCC allocates them from bit 0 up on these
// little-endian targets: openmin = bit 0, openmax = 1, integer = 2, empty = 3.
//
// struct snd_pcm_sw_params                64-bit      32-bit
//
//	 0 int tstamp_mode
//	 4 unsigned int period_step
//	 8 unsigned int sleep_min
//	   snd_pcm_uframes_t avail_min         @16         @12
//	   snd_pcm_uframes_t xfer_align        @24         @16
//	   snd_pcm_uframes_t start_threshold   @32         @20
//	   snd_pcm_uframes_t stop_threshold    @40         @24
//	   snd_pcm_uframes_t silence_threshold @48         @28
//	   snd_pcm_uframes_t silence_size      @56         @32
//	   snd_pcm_uframes_t boundary          @64         @36
//	   unsigned int proto                  @72         @40
//	   unsigned int tstamp_type            @76         @44
//	   unsigned char reserved[56]          @80         @48
//	   sizeof                              136         104
//
// struct snd_xferi                        64-bit      32-bit
//
//	 0 snd_pcm_sframes_t result            frames moved (out)
//	   void *buf                           @8          @4
//	   snd_pcm_uframes_t frames            @16         @8
//	   sizeof                              24          12

type sndMask struct {
	bits [8]uint32
}

type sndInterval struct {
	min, max uint32
	flags    uint32 // intervalOpenMin | intervalOpenMax | intervalInteger | intervalEmpty
}

const (
	intervalOpenMin = 1 << 0
	intervalOpenMax = 1 << 1
	intervalInteger = 1 << 2
	intervalEmpty   = 1 << 3
)

type sndPCMHwParams struct {
	flags     uint32
	masks     [3]sndMask
	mres      [5]sndMask
	intervals [12]sndInterval
	ires      [9]sndInterval
	rmask     uint32
	cmask     uint32
	info      uint32
	msbits    uint32
	rateNum   uint32
	rateDen   uint32
	fifoSize  uint // snd_pcm_uframes_t
	sync      [16]byte
	reserved  [48]byte
}

type sndPCMSwParams struct {
	tstampMode       int32
	periodStep       uint32
	sleepMin         uint32
	availMin         uint // snd_pcm_uframes_t, as are the next six
	xferAlign        uint
	startThreshold   uint
	stopThreshold    uint
	silenceThreshold uint
	silenceSize      uint
	boundary         uint
	proto            uint32
	tstampType       uint32
	reserved         [56]byte
}

type sndXferi struct {
	result int            // snd_pcm_sframes_t
	buf    unsafe.Pointer // points into a heap buffer of the device
	frames uint           // snd_pcm_uframes_t
}

// Hardware parameters (SNDRV_PCM_HW_PARAM_*): masks 0..2, intervals 8..19.
const (
	hwParamAccess     = 0
	hwParamFormat     = 1
	hwParamSubformat  = 2
	hwParamSampleBits = 8
	hwParamFrameBits  = 9
	hwParamChannels   = 10
	hwParamRate       = 11
	hwParamPeriodTime = 12
	hwParamPeriodSize = 13
	hwParamPeriods    = 15
	hwParamBufferSize = 17
	hwParamTickTime   = 19

	hwParamFirstInterval = hwParamSampleBits
)

// Values of the masks.
const (
	accessRWInterleaved = 3 // SNDRV_PCM_ACCESS_RW_INTERLEAVED
	formatS16LE         = 2 // SNDRV_PCM_FORMAT_S16_LE
	subformatStd        = 0 // SNDRV_PCM_SUBFORMAT_STD
)

// sndrvProtocolMajor extracts the major of SNDRV_PROTOCOL_VERSION(major,
// minor, subminor) = major<<16 | minor<<8 | subminor; the PCM interface is
// at 2.
func sndrvProtocolMajor(v int32) int { return int(v >> 16) }

// The generic Linux ioctl request encoding (include/uapi/asm-generic/ioctl.h),
// used by x86, arm and arm64 alike:
//
//	bits 31..30 direction (1 write = user to kernel, 2 read, 3 both)
//	bits 29..16 argument size (14 bits)
//	bits 15..8  type ('A' for PCM)
//	bits  7..0  number
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocDirShift  = 30
	iocSizeShift = 16
	iocTypeShift = 8
	iocPCM       = 'A' << iocTypeShift
)

// PCM requests (SNDRV_PCM_IOCTL_*), each _IO*('A', nr, type).
const (
	ioctlPVersion = iocRead<<iocDirShift | unsafe.Sizeof(int32(0))<<iocSizeShift | iocPCM | 0x00
	ioctlHWRefine = (iocRead|iocWrite)<<iocDirShift | unsafe.Sizeof(sndPCMHwParams{})<<iocSizeShift | iocPCM | 0x10
	ioctlHWParams = (iocRead|iocWrite)<<iocDirShift | unsafe.Sizeof(sndPCMHwParams{})<<iocSizeShift | iocPCM | 0x11
	ioctlSWParams = (iocRead|iocWrite)<<iocDirShift | unsafe.Sizeof(sndPCMSwParams{})<<iocSizeShift | iocPCM | 0x13
	ioctlPrepare  = iocNone<<iocDirShift | iocPCM | 0x40
	ioctlDrop     = iocNone<<iocDirShift | iocPCM | 0x43
	ioctlWriteI   = iocWrite<<iocDirShift | unsafe.Sizeof(sndXferi{})<<iocSizeShift | iocPCM | 0x50
	ioctlReadI    = iocRead<<iocDirShift | unsafe.Sizeof(sndXferi{})<<iocSizeShift | iocPCM | 0x51
)

// anyHWParams returns parameters that allow everything, as alsa-lib's
// snd_pcm_hw_params_any starts: full masks, intervals [0, UINT_MAX], and
// every parameter marked for refinement.
func anyHWParams() *sndPCMHwParams {
	p := &sndPCMHwParams{rmask: math.MaxUint32, info: math.MaxUint32}
	for i := range p.masks {
		for j := range p.masks[i].bits {
			p.masks[i].bits[j] = math.MaxUint32
		}
	}
	for i := range p.intervals {
		p.intervals[i] = sndInterval{min: 0, max: math.MaxUint32}
	}
	return p
}

// setMask narrows mask parameter param to the single value v.
func (p *sndPCMHwParams) setMask(param, v int) {
	m := &p.masks[param]
	m.bits = [8]uint32{}
	m.bits[v/32] = 1 << (v % 32)
	p.rmask |= 1 << param
}

// maskHas reports whether mask parameter param allows v.
func (p *sndPCMHwParams) maskHas(param, v int) bool {
	return p.masks[param].bits[v/32]&(1<<(v%32)) != 0
}

func (p *sndPCMHwParams) interval(param int) *sndInterval {
	return &p.intervals[param-hwParamFirstInterval]
}

// setInterval narrows interval parameter param to the closed integer
// range [lo, hi].
func (p *sndPCMHwParams) setInterval(param int, lo, hi uint32) {
	*p.interval(param) = sndInterval{min: lo, max: hi, flags: intervalInteger}
	p.rmask |= 1 << param
}

// bounds returns the smallest and largest integer an interval allows, and
// false when it allows none.
func (iv sndInterval) bounds() (lo, hi uint32, ok bool) {
	lo, hi = iv.min, iv.max
	if iv.flags&intervalOpenMin != 0 {
		if lo == math.MaxUint32 {
			return 0, 0, false
		}
		lo++
	}
	if iv.flags&intervalOpenMax != 0 {
		if hi == 0 {
			return 0, 0, false
		}
		hi--
	}
	if iv.flags&intervalEmpty != 0 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// single returns the interval's value once the kernel has fixed it.
func (iv sndInterval) single() (uint32, bool) {
	lo, hi, ok := iv.bounds()
	return lo, ok && lo == hi
}

// clampTo returns v moved into [lo, hi].
func clampTo(v, lo, hi uint32) uint32 {
	return max(lo, min(v, hi))
}
