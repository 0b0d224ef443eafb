package system

import "github.com/hardphone/hardphone/hal/audio"

// OpenPlayback opens a WAV file (mono 16-bit PCM at 8, 16, 32 or 48 kHz) to
// play into a call; the call converts it to its codec's rate.
func OpenPlayback(path string) (*audio.WAVSource, error) { return audio.OpenWAV(path) }

// CreateRecording creates a WAV file that records what a call receives, at
// CallRate (16 kHz): a G.722 call is recorded as it was decoded, a G.711
// call converted up from 8 kHz (its spectrum still ends at 4 kHz). Close it
// when the call ends.
func CreateRecording(path string) (*audio.WAVSink, error) {
	return audio.CreateWAV(path, CallRate)
}
