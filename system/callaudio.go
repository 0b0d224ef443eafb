package system

import (
	"errors"
	"fmt"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/hal/audio"
)

// CallRate is the rate, in Hz, the sound device is opened at for a call:
// G.722's 16 kHz, so a wideband call reaches the headset as wideband; the
// media layer converts to and from 8 kHz when the call is G.711, and a
// PulseAudio server converts to whatever the hardware runs at.
const CallRate = 16000

// alsaRates are the rates tried, in order, for an ALSA hardware device,
// which (unlike a sound server) only opens at rates its codec chip runs:
// wideband first, then what USB headsets and on-board codecs usually
// offer. The media layer converts between any of them and the codec.
var alsaRates = []int{CallRate, 48000, 8000, 32000}

// micTimeout is how long a call's send loop waits on a PulseAudio
// microphone for a frame before it sends silence on its own clock.
const micTimeout = 100 * time.Millisecond

// CallAudio opens the sound device a call talks through, per call: a
// capture Source and a playback Sink, at CallRate for PulseAudio and at the
// first of alsaRates the card takes for ALSA, and a close for both. It
// returns nil when the config names no device (calls then carry silence
// unless a command gives files).
func CallAudio(c config.Audio, app string) func() (audio.Source, audio.Sink, func() error, error) {
	switch c.Device {
	case "pulse":
		return func() (audio.Source, audio.Sink, func() error, error) {
			opts := []audio.PulseOption{audio.PulseAppName(app)}
			if c.Server != "" {
				opts = append(opts, audio.PulseServer(c.Server))
			}
			// A microphone that delivers nothing for 100 ms is stalled: the
			// call sends silence on its own clock until it delivers again,
			// rather than wait out the default 2 s.
			src, err := audio.OpenPulseSource(CallRate, append(opts, audio.PulseDevice(c.Input), audio.PulseReadTimeout(micTimeout))...)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("microphone: %w", err)
			}
			sink, err := audio.OpenPulseSink(CallRate, append(opts, audio.PulseDevice(c.Output))...)
			if err != nil {
				return nil, nil, nil, errors.Join(fmt.Errorf("speaker: %w", err), src.Close())
			}
			return src, sink, func() error { return errors.Join(src.Close(), sink.Close()) }, nil
		}
	case "alsa":
		return func() (audio.Source, audio.Sink, func() error, error) {
			src, err := openALSA(c.Input, audio.OpenALSASource)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("microphone: %w", err)
			}
			sink, err := openALSA(c.Output, audio.OpenALSASink)
			if err != nil {
				return nil, nil, nil, errors.Join(fmt.Errorf("speaker: %w", err), src.Close())
			}
			return src, sink, func() error { return errors.Join(src.Close(), sink.Close()) }, nil
		}
	}
	return nil
}

// openALSA opens device at the first of alsaRates it takes.
func openALSA[T any](device string, open func(string, int, ...audio.ALSAOption) (T, error)) (T, error) {
	var errs []error
	for _, r := range alsaRates {
		d, err := open(device, r)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, audio.ErrUnsupportedFormat) {
			return d, err
		}
		errs = append(errs, err)
	}
	var zero T
	return zero, fmt.Errorf("%s takes none of %v Hz: %w", device, alsaRates, errors.Join(errs...))
}
