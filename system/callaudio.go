package system

import (
	"errors"
	"fmt"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/hal/audio"
)

// CallAudio opens the sound device a call talks through, per call: a
// capture Source and a playback Sink at the narrowband rate the call's
// codec uses, and a close for both. It returns nil when the config names
// no device (calls then carry silence unless a command gives files).
func CallAudio(c config.Audio, app string) func() (audio.Source, audio.Sink, func() error, error) {
	switch c.Device {
	case "pulse":
		return func() (audio.Source, audio.Sink, func() error, error) {
			opts := []audio.PulseOption{audio.PulseAppName(app)}
			if c.Server != "" {
				opts = append(opts, audio.PulseServer(c.Server))
			}
			src, err := audio.OpenPulseSource(audio.SampleRate, append(opts, audio.PulseDevice(c.Input))...)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("microphone: %w", err)
			}
			sink, err := audio.OpenPulseSink(audio.SampleRate, append(opts, audio.PulseDevice(c.Output))...)
			if err != nil {
				return nil, nil, nil, errors.Join(fmt.Errorf("speaker: %w", err), src.Close())
			}
			return src, sink, func() error { return errors.Join(src.Close(), sink.Close()) }, nil
		}
	case "alsa":
		return func() (audio.Source, audio.Sink, func() error, error) {
			src, err := audio.OpenALSASource(c.Input, audio.SampleRate)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("microphone: %w", err)
			}
			sink, err := audio.OpenALSASink(c.Output, audio.SampleRate)
			if err != nil {
				return nil, nil, nil, errors.Join(fmt.Errorf("speaker: %w", err), src.Close())
			}
			return src, sink, func() error { return errors.Join(src.Close(), sink.Close()) }, nil
		}
	}
	return nil
}
