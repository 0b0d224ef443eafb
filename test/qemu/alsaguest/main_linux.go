//go:build linux

package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/hal/audio"
	"github.com/hardphone/hardphone/hal/kmod"
	"github.com/hardphone/hardphone/system"
)

// What the test puts in the initramfs, and the loopback card's two ends:
// snd-aloop plays what is written to substream N of device 0 into
// substream N of device 1.
const (
	modulesList = "/modules.list" // module files under /lib/modules, in load order
	modulesDir  = "/lib/modules"
	signalFile  = "/signal.wav"
	output      = "hw:Loopback,0"
	input       = "hw:Loopback,1"

	marker = "HARDPHONE-MARKER "
	// maxModules and maxSignalSamples bound what the guest reads; the
	// capture is the signal plus slackSeconds.
	maxModules       = 32
	maxSignalSamples = 10 * 48000
	slackSeconds     = 1
	// pcmLineBytes of PCM go on one console line (base64: 4/3 of it).
	pcmLineBytes = 3000
)

func main() {
	if err := run(); err != nil {
		fmt.Printf(marker+"alsa-error error=%q\n", err.Error())
	}
	unix.Sync()
	// -no-reboot: the power-off ends QEMU. If it fails, PID 1 returns and
	// the kernel panics, which ends QEMU as well.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf(marker+"alsa-error error=%q\n", "power off: "+err.Error())
	}
}

func run() error {
	for _, m := range []struct{ src, dir, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	n, err := loadModules()
	if err != nil {
		return err
	}
	fmt.Printf(marker+"alsa-modules loaded=%d\n", n)

	open := system.CallAudio(config.Audio{Device: "alsa", Input: input, Output: output}, "alsaguest")
	if open == nil {
		return errors.New("system.CallAudio gave no opener for device alsa")
	}
	src, sink, closeDev, err := open()
	if err != nil {
		return fmt.Errorf("open %s and %s: %w", input, output, err)
	}
	in, inOK := src.(*audio.ALSASource)
	out, outOK := sink.(*audio.ALSASink)
	if !inOK || !outOK {
		return errors.Join(fmt.Errorf("CallAudio opened %T and %T, want the ALSA source and sink", src, sink), closeDev())
	}
	ip, op := in.Params(), out.Params()
	fmt.Printf(marker+"alsa-open rate=%d in_channels=%d out_channels=%d period=%d buffer=%d\n",
		op.Rate, ip.Channels, op.Channels, op.PeriodFrames, op.BufferFrames)
	signal, err := readSignal(op.Rate)
	if err != nil {
		return errors.Join(err, closeDev())
	}
	capture, lead, err := loop(in, out, signal, op.Rate)
	inStats, outStats := in.Stats(), out.Stats()
	if cerr := closeDev(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if ip.Rate != op.Rate {
		return fmt.Errorf("capture at %d Hz, playback at %d Hz", ip.Rate, op.Rate)
	}
	b := make([]byte, 2*len(capture))
	for i, s := range capture {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	w := bufio.NewWriter(os.Stdout)
	for seq := 0; len(b) > 0; seq++ {
		k := min(pcmLineBytes, len(b))
		fmt.Fprintf(w, marker+"alsa-pcm seq=%d data=%s\n", seq, base64.StdEncoding.EncodeToString(b[:k]))
		b = b[k:]
	}
	fmt.Fprintf(w, marker+"alsa-done samples=%d rate=%d play_underruns=%d play_overruns=%d capture_overruns=%d capture_dropped=%d lead_in_xruns=%d\n",
		len(capture), op.Rate, outStats.Underruns, outStats.Overruns, inStats.Overruns, inStats.Dropped, lead)
	return w.Flush()
}

// loadModules loads the list's module files in order with finit_module,
// which resolves no dependencies: the test wrote them in modprobe's order.
func loadModules() (int, error) {
	f, err := os.Open(modulesList)
	if err != nil {
		return 0, fmt.Errorf("modules: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		if n++; n > maxModules {
			return 0, fmt.Errorf("modules: more than %d in %s", maxModules, modulesList)
		}
		if name != filepath.Base(name) {
			return 0, fmt.Errorf("modules: %q is not a file name", name)
		}
		if err := kmod.Load(filepath.Join(modulesDir, name), ""); err != nil {
			return 0, fmt.Errorf("modules: %w", err)
		}
	}
	return n, sc.Err()
}

// readSignal reads the test's WAV, which must be at the rate the card took.
func readSignal(rate int) ([]int16, error) {
	w, err := audio.OpenWAV(signalFile)
	if err != nil {
		return nil, fmt.Errorf("signal: %w", err)
	}
	defer w.Close()
	if w.Rate() != rate {
		return nil, fmt.Errorf("signal at %d Hz, the card runs at %d Hz", w.Rate(), rate)
	}
	var s []int16
	buf := make([]int16, audio.FrameSamplesAt(rate))
	for {
		n, err := w.ReadFrame(buf)
		s = append(s, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("signal: %w", err)
		}
		if len(s) > maxSignalSamples {
			return nil, fmt.Errorf("signal longer than %d samples", maxSignalSamples)
		}
	}
}

// xruns is the sum of the xrun counters of both ends.
func xruns(in *audio.ALSASource, out *audio.ALSASink) uint64 {
	i, o := in.Stats(), out.Stats()
	return i.Overruns + i.Underruns + o.Overruns + o.Underruns
}

// loop plays signal, then silence, into out while it captures in, until it
// has captured the signal's length plus slackSeconds (the way through the
// loopback: the playback buffer and one capture period). It also returns
// the xruns counted before the frame with the signal's first sound went
// out: those hit the silent lead-in only.
func loop(in *audio.ALSASource, out *audio.ALSASink, signal []int16, rate int) ([]int16, uint64, error) {
	sound := slices.IndexFunc(signal, func(s int16) bool { return s != 0 })
	var lead uint64
	want := len(signal) + slackSeconds*rate
	type result struct {
		pcm []int16
		err error
	}
	done := make(chan result, 1)
	go func() {
		pcm := make([]int16, 0, want)
		buf := make([]int16, audio.FrameSamplesAt(rate))
		for len(pcm) < want {
			n, err := in.ReadFrame(buf)
			if err != nil {
				done <- result{pcm, fmt.Errorf("capture %s after %d samples: %w", input, len(pcm), err)}
				return
			}
			pcm = append(pcm, buf[:n]...)
		}
		done <- result{pcm[:want], nil}
	}()
	frame := audio.FrameSamplesAt(rate)
	silence := make([]int16, frame)
	for off := 0; ; off += frame {
		select {
		case r := <-done:
			return r.pcm, lead, r.err
		default:
		}
		if off <= sound && sound < off+frame {
			lead = xruns(in, out)
		}
		buf := silence
		if off < len(signal) {
			buf = signal[off:min(off+frame, len(signal))]
		}
		if err := out.WriteFrame(buf); err != nil {
			r := <-done
			return nil, 0, errors.Join(fmt.Errorf("play %s at sample %d: %w", output, off, err), r.err)
		}
	}
}
