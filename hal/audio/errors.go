package audio

import "errors"

// ErrUnsupportedFormat is returned for a WAV file that is not 16-bit PCM
// mono at the required rate, or a sink asked for a rate it cannot write.
var ErrUnsupportedFormat = errors.New("unsupported audio format")

// ErrUnsupported is returned by device back ends that do not exist on this
// platform (ALSA outside Linux).
var ErrUnsupported = errors.New("audio device not supported on this platform")

// ErrNoDevice is returned when the named device does not exist; a CLI lists
// the devices (ListPulseDevices) in reply.
var ErrNoDevice = errors.New("no such audio device")

// ErrClosed is returned by ReadFrame and WriteFrame after Close.
var ErrClosed = errors.New("audio device closed")

// ErrDisconnected is returned once the sound server or the kernel driver
// has dropped the stream (server gone, stream killed, device unplugged).
// The device must be closed and opened again.
var ErrDisconnected = errors.New("audio device disconnected")

// ErrStalled is returned by ReadFrame when the device delivered no samples
// within the read timeout (a suspended or hung source).
var ErrStalled = errors.New("audio device stalled")

var (
	errNotWAV    = errors.New("not a RIFF/WAVE file")
	errBadChunk  = errors.New("malformed WAV chunk")
	errNoData    = errors.New("WAV file has no data chunk")
	errTooLarge  = errors.New("WAV data exceeds 4 GiB")
	errClosedWAV = errors.New("WAV file already closed")
	errBadOption = errors.New("invalid audio device option")
	errProtocol  = errors.New("sound server protocol violation")
)
