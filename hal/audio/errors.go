package audio

import "errors"

// ErrUnsupportedFormat is returned for a WAV file that is not 16-bit PCM
// mono at the required rate, or a sink asked for a rate it cannot write.
var ErrUnsupportedFormat = errors.New("unsupported audio format")

var (
	errNotWAV    = errors.New("not a RIFF/WAVE file")
	errBadChunk  = errors.New("malformed WAV chunk")
	errNoData    = errors.New("WAV file has no data chunk")
	errTooLarge  = errors.New("WAV data exceeds 4 GiB")
	errClosedWAV = errors.New("WAV file already closed")
)
