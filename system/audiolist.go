package system

import (
	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/hal/audio"
)

// AudioDevices is what hardphone audio lists: the devices a call can talk
// through, with what went wrong asking for each kind (a desktop without a
// sound server still has its ALSA cards listed).
type AudioDevices struct {
	Pulse      []AudioDevice `json:"pulse"`
	PulseError string        `json:"pulse_error,omitempty"`
	ALSA       []ALSADevice  `json:"alsa"`
	ALSAError  string        `json:"alsa_error,omitempty"`
}

// AudioDevice is one PulseAudio sink (Kind "playback") or source
// ("capture"); Name is what [audio] input/output and --mic/--speaker take.
type AudioDevice struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Description string `json:"description"`
	MonitorOf   string `json:"monitor_of,omitempty"`
	Rate        int    `json:"rate"`
	Channels    int    `json:"channels"`
	Default     bool   `json:"default,omitempty"`
}

// ALSADevice is one hardware PCM: Name ("hw:C,D") is what [audio]
// input/output take with device = "alsa".
type ALSADevice struct {
	Name        string `json:"name"`
	Card        string `json:"card,omitempty"`
	Description string `json:"description"`
	Playback    bool   `json:"playback"`
	Capture     bool   `json:"capture"`
}

// ListAudioDevices asks the PulseAudio server c names (its Server; ""
// = $PULSE_SERVER, then the user's) for its sinks and sources, and the
// kernel for its ALSA hardware PCMs.
func ListAudioDevices(c config.Audio) AudioDevices {
	var out AudioDevices
	opts := []audio.PulseOption{audio.PulseAppName("hardphone audio")}
	if c.Server != "" {
		opts = append(opts, audio.PulseServer(c.Server))
	}
	if ps, err := audio.ListPulseDevices(opts...); err != nil {
		out.PulseError = err.Error()
	} else {
		for _, d := range ps {
			out.Pulse = append(out.Pulse, AudioDevice{Kind: d.Kind.String(), Name: d.Name, Description: d.Description,
				MonitorOf: d.MonitorOf, Rate: d.Rate, Channels: d.Channels, Default: d.Default})
		}
	}
	if as, err := audio.ListALSADevices(); err != nil {
		out.ALSAError = err.Error()
	} else {
		for _, d := range as {
			out.ALSA = append(out.ALSA, ALSADevice{Name: d.Name, Card: d.Card, Description: d.Description,
				Playback: d.Playback, Capture: d.Capture})
		}
	}
	return out
}
