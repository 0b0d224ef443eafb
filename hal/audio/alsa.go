package audio

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// ALSA devices are opened directly on the kernel's PCM device nodes,
// /dev/snd/pcmC{card}D{device}{p,c}, through the ioctls of alsa_abi.go:
// no alsa-lib, no plugins, no cgo. That is the "hw:" level of ALSA: the
// hardware must support 16-bit little-endian samples at the requested rate
// itself (there is no resampler); a device without a mono mode is driven in
// stereo, with the frame duplicated on playback and the two channels
// averaged on capture.
//
// Queue policy: the kernel's ring buffer (ALSAPeriods periods) is the only
// queue. WriteFrame waits while it is full and ReadFrame while it holds
// less than the frame, each at most ALSATimeout (then ErrStalled); the
// sound card's clock paces the caller. A playback underrun or capture
// overrun (xrun: the kernel reports EPIPE) is counted in Stats and the
// stream is prepared and restarted, as alsa-lib's snd_pcm_recover does.

const (
	defaultALSAPeriod  = FrameDuration * time.Millisecond
	defaultALSAPeriods = 4
	defaultALSATimeout = 2 * time.Second
	// maxALSACard and maxALSADevice bound the node names (the kernel's
	// SNDRV_CARDS defaults to 32 cards).
	maxALSACard   = 255
	maxALSADevice = 255
	maxALSAName   = 64
)

// ALSAOption configures OpenALSASource and OpenALSASink. Each option
// validates its argument.
type ALSAOption func(*alsaConfig) error

type alsaConfig struct {
	period  time.Duration
	periods int
	timeout time.Duration
	log     *slog.Logger // never nil after newALSAConfig
}

func newALSAConfig(opts []ALSAOption) (alsaConfig, error) {
	c := alsaConfig{
		period:  defaultALSAPeriod,
		periods: defaultALSAPeriods,
		timeout: defaultALSATimeout,
		log:     slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return alsaConfig{}, err
		}
	}
	return c, nil
}

// ALSAPeriod sets the period, the interval at which the card interrupts
// and the unit the kernel moves audio in: 5 ms to 100 ms, default 20 ms
// (one frame). The card may round it to what it supports; Params reports
// the result.
func ALSAPeriod(d time.Duration) ALSAOption {
	return func(c *alsaConfig) error {
		if d < 5*time.Millisecond || d > 100*time.Millisecond {
			return fmt.Errorf("ALSA period %v outside 5ms..100ms: %w", d, errBadOption)
		}
		c.period = d
		return nil
	}
}

// ALSAPeriods sets the kernel buffer size in periods: 2 to 16, default 4.
// Playback starts once two periods are queued.
func ALSAPeriods(n int) ALSAOption {
	return func(c *alsaConfig) error {
		if n < 2 || n > 16 {
			return fmt.Errorf("ALSA buffer of %d periods outside 2..16: %w", n, errBadOption)
		}
		c.periods = n
		return nil
	}
}

// ALSATimeout sets how long ReadFrame and WriteFrame wait for the card
// before returning ErrStalled: 100 ms to 60 s, default 2 s.
func ALSATimeout(d time.Duration) ALSAOption {
	return func(c *alsaConfig) error {
		if d < 100*time.Millisecond || d > time.Minute {
			return fmt.Errorf("ALSA timeout %v outside 100ms..1m: %w", d, errBadOption)
		}
		c.timeout = d
		return nil
	}
}

// ALSALogger sets the logger; the device adds component=alsa. Without it
// nothing is logged.
func ALSALogger(l *slog.Logger) ALSAOption {
	return func(c *alsaConfig) error {
		if l == nil {
			return fmt.Errorf("nil logger: %w", errBadOption)
		}
		c.log = l
		return nil
	}
}

// ALSAParams is what the card agreed to.
type ALSAParams struct {
	// Rate is the sample rate in Hz; Channels 1, or 2 on a card without
	// a mono mode (converted to and from mono frames).
	Rate, Channels int
	// PeriodFrames and BufferFrames are the period and kernel buffer in
	// frames (samples per channel).
	PeriodFrames, BufferFrames int
}

// alsaDevice names one PCM device of one card.
type alsaDevice struct {
	card, device int
}

// parseALSADevice parses an ALSA hardware device name: "hw:C,D", "hw:C"
// (device 0), or "hw:CARD=ID,DEV=D" / "hw:ID,D" with the card's ID (as in
// /proc/asound/cards) resolved by lookupCard. Plugin devices ("plughw:",
// "default", "dmix") need alsa-lib and are refused.
func parseALSADevice(s string, lookupCard func(id string) (int, error)) (alsaDevice, error) {
	if len(s) > maxALSAName {
		return alsaDevice{}, fmt.Errorf("ALSA device name of %d bytes, limit %d: %w", len(s), maxALSAName, errBadOption)
	}
	rest, ok := strings.CutPrefix(s, "hw:")
	if !ok {
		return alsaDevice{}, fmt.Errorf("ALSA device %q: want hw:CARD,DEVICE (plugins such as plughw and default need alsa-lib): %w", s, errBadOption)
	}
	cardStr, devStr, hasDev := strings.Cut(rest, ",")
	if v, ok := strings.CutPrefix(cardStr, "CARD="); ok {
		cardStr = v
	}
	if v, ok := strings.CutPrefix(devStr, "DEV="); ok {
		devStr = v
	}
	var d alsaDevice
	if n, err := strconv.Atoi(cardStr); err == nil {
		if n < 0 || n > maxALSACard {
			return alsaDevice{}, fmt.Errorf("ALSA device %q: card %d outside 0..%d: %w", s, n, maxALSACard, errBadOption)
		}
		d.card = n
	} else {
		if !validALSACardID(cardStr) {
			return alsaDevice{}, fmt.Errorf("ALSA device %q: card %q is neither a number nor a card ID: %w", s, cardStr, errBadOption)
		}
		n, err := lookupCard(cardStr)
		if err != nil {
			return alsaDevice{}, fmt.Errorf("ALSA device %q: %w", s, err)
		}
		d.card = n
	}
	if hasDev {
		n, err := strconv.Atoi(devStr)
		if err != nil || n < 0 || n > maxALSADevice {
			return alsaDevice{}, fmt.Errorf("ALSA device %q: device %q outside 0..%d: %w", s, devStr, maxALSADevice, errBadOption)
		}
		d.device = n
	}
	return d, nil
}

// validALSACardID accepts what the kernel makes of a card ID: up to 15
// letters, digits and underscores (sound/core/init.c copies the name's
// alphanumerics), so it is safe as a file name under /proc/asound.
func validALSACardID(id string) bool {
	if id == "" || len(id) > 15 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// path is the device node for playback (p) or capture (c).
func (d alsaDevice) path(capture bool) string {
	dir := 'p'
	if capture {
		dir = 'c'
	}
	return fmt.Sprintf("/dev/snd/pcmC%dD%d%c", d.card, d.device, dir)
}

// alsaBufferFrames turns the configured period and period count into frame
// counts at rate.
func alsaBufferFrames(cfg *alsaConfig, rate int) (period, buffer uint32) {
	period = uint32(cfg.period.Seconds() * float64(rate))
	return period, period * uint32(cfg.periods)
}
