package agent

import (
	"errors"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/hal/audio"
)

// AudioOpener opens the sound device for one call: the microphone, the
// speaker, and a close for both.
type AudioOpener func() (audio.Source, audio.Sink, func() error, error)

// WithCallAudio makes calls talk through the device open opens: answered
// calls (unless a command set other audio ends) and calls placed through
// the control protocol. The device is closed when the call ends.
func WithCallAudio(open AudioOpener) Option {
	return func(a *Agent) error {
		if open == nil {
			return errors.New("agent: nil audio opener")
		}
		a.audio = open
		return nil
	}
}

// callAudio opens the device for c; a device that fails leaves the call
// silent (it still proceeds) and says why in the log.
func (a *Agent) callAudio(c *sip.Call) sip.CallOptions {
	if a.audio == nil {
		return sip.CallOptions{}
	}
	src, sink, closeFn, err := a.audio()
	if err != nil {
		a.log.Warn("sound device", "error", err)
		return sip.CallOptions{}
	}
	go func() {
		<-c.Done()
		if err := closeFn(); err != nil {
			a.log.Warn("close sound device", "error", err)
		}
	}()
	return sip.CallOptions{Source: src, Sink: sink}
}
