package audio

import "fmt"

// FrameSamples is the number of samples in one 20 ms frame at 8 kHz, the unit
// a call moves audio in.
const FrameSamples = 160

// SampleRate is the narrowband telephony rate, in Hz, of every Source and
// Sink a G.711 call uses.
const SampleRate = 8000

// Source produces audio frames. ReadFrame fills buf with up to len(buf)
// signed 16-bit samples and returns how many it wrote. At the end of the
// stream it returns 0, io.EOF; a short final frame is returned with a nil
// error first. A Source is used from one goroutine at a time.
type Source interface {
	ReadFrame(buf []int16) (int, error)
}

// Sink consumes audio frames. WriteFrame must not keep buf after it returns.
// A Sink is used from one goroutine at a time.
type Sink interface {
	WriteFrame(buf []int16) error
}

// FrameDuration is the length of one frame in milliseconds at every rate.
const FrameDuration = 20

// Rates the device back ends open: narrowband (G.711), wideband (G.722's
// 16 kHz sampling), and the super-wideband and full-band rates Opus and
// desktop hardware use.
var deviceRates = [...]int{8000, 16000, 32000, 48000}

// FrameSamplesAt is the number of mono samples in one 20 ms frame at rate
// Hz (160 at 8 kHz, 320 at 16 kHz).
func FrameSamplesAt(rate int) int { return rate * FrameDuration / 1000 }

// checkRate refuses a device rate outside deviceRates.
func checkRate(rate int) error {
	for _, r := range deviceRates {
		if rate == r {
			return nil
		}
	}
	return fmt.Errorf("sample rate %d Hz, want one of %v: %w", rate, deviceRates, ErrUnsupportedFormat)
}

// Stats counts a device stream's losses since it was opened. Every field is
// a running total.
type Stats struct {
	// Overruns counts events where samples were thrown away because the
	// producer ran ahead of the consumer: a capture device filled the queue
	// faster than ReadFrame emptied it, or WriteFrame outran playback.
	Overruns uint64
	// Underruns counts events where playback ran dry (silence was played)
	// or, for capture, the kernel or server reported lost input.
	Underruns uint64
	// Dropped is the number of samples the Overruns threw away.
	Dropped uint64
}
