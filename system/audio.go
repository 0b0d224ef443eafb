package system

import "github.com/hardphone/hardphone/hal/audio"

// OpenPlayback opens a WAV file (8 kHz mono 16-bit PCM) to play into a
// call.
func OpenPlayback(path string) (*audio.WAVSource, error) { return audio.OpenWAV(path) }

// CreateRecording creates a WAV file that records what a call receives;
// Close it when the call ends.
func CreateRecording(path string) (*audio.WAVSink, error) {
	return audio.CreateWAV(path, audio.SampleRate)
}
