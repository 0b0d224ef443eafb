package audio

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
