package test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pulseReadyTimeout bounds the wait for a started pulseaudio to answer.
const pulseReadyTimeout = 15 * time.Second

// Names of the virtual devices StartPulse creates.
const (
	// PulseSpeaker is a null sink: what is played there goes nowhere but
	// to its monitor source, PulseSpeakerMonitor, where a test records it.
	PulseSpeaker        = "hp_null"
	PulseSpeakerMonitor = PulseSpeaker + ".monitor"
	// PulseMicSink is a null sink a test plays "into the microphone";
	// PulseMic is a real (non-monitor) source remapped from its monitor,
	// the server's default source, which the phone records from.
	PulseMicSink = "hp_mic"
	PulseMic     = "hp_mic_in"
)

// Pulse is a PulseAudio daemon started by StartPulse for one test, with no
// sound card: two null sinks and a virtual microphone. It is stopped by
// PID when the test ends.
type Pulse struct {
	// Server is the server string for audio.PulseServer and pactl -s:
	// "unix:" and the socket path.
	Server string
	// Rate is the sample rate (Hz) of the virtual devices.
	Rate int

	dir   string
	pactl string
	proc  *process
}

type pulseOptions struct {
	rate, channels int
}

// PulseOption configures StartPulse.
type PulseOption func(*pulseOptions) error

// PulseRate sets the virtual devices' sample rate (default 48000, what
// desktop hardware runs at, so 8 and 16 kHz streams are resampled).
func PulseRate(hz int) PulseOption {
	return func(o *pulseOptions) error {
		if hz < 8000 || hz > 192000 {
			return fmt.Errorf("pulse rate %d outside 8000..192000", hz)
		}
		o.rate = hz
		return nil
	}
}

// PulseChannels sets the virtual devices' channel count (default 2, like a
// headset; mono streams are up- and down-mixed by the server).
func PulseChannels(n int) PulseOption {
	return func(o *pulseOptions) error {
		if n < 1 || n > 8 {
			return fmt.Errorf("pulse channels %d outside 1..8", n)
		}
		o.channels = n
		return nil
	}
}

// StartPulse starts Debian's pulseaudio as an ordinary per-user daemon (not
// --system) with a private configuration and socket, and waits until
// `pactl info` answers on it. Run as root, the daemon drops to the user
// nobody (pulseaudio refuses to run as root outside system mode) with a
// private HOME and XDG_RUNTIME_DIR that the test process, being root, can
// still reach. The socket allows anonymous clients (auth-anonymous=1): it
// lives in a directory only its owner and root can enter. StartPulse skips
// the test when pulseaudio or pactl is missing, or fails it under CI=true.
func StartPulse(t testing.TB, opts ...PulseOption) *Pulse {
	t.Helper()
	o := pulseOptions{rate: 48000, channels: 2}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("StartPulse: %v", err)
		}
	}
	bin := requireBinary(t, "pulseaudio")
	pactl := requireBinary(t, "pactl")

	// The socket path must fit in sun_path (108 bytes); t.TempDir() paths
	// carry the test name and may not.
	dir, err := os.MkdirTemp("", "pulse-")
	if err != nil {
		t.Fatalf("StartPulse: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			missing(t, "running as root and no user nobody to run pulseaudio as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid) // user.Lookup returns decimal ids on Linux
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false, Groups: []uint32{}}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("StartPulse: %v", err)
		}
	}
	socket := filepath.Join(dir, "native")
	p := &Pulse{Server: "unix:" + socket, Rate: o.rate, dir: dir, pactl: pactl}

	cfg := filepath.Join(dir, "hardphone-test.pa")
	script := strings.Join([]string{
		".fail",
		fmt.Sprintf("load-module module-native-protocol-unix socket=%s auth-anonymous=1", socket),
		fmt.Sprintf("load-module module-null-sink sink_name=%s rate=%d channels=%d sink_properties=device.description=hardphone-speaker",
			PulseSpeaker, o.rate, o.channels),
		fmt.Sprintf("load-module module-null-sink sink_name=%s rate=%d channels=%d sink_properties=device.description=hardphone-mic-feed",
			PulseMicSink, o.rate, o.channels),
		fmt.Sprintf("load-module module-remap-source master=%s.monitor source_name=%s source_properties=device.description=hardphone-mic",
			PulseMicSink, PulseMic),
		"set-default-sink " + PulseSpeaker,
		"set-default-source " + PulseMic,
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(script), 0o644); err != nil {
		t.Fatalf("StartPulse: %v", err)
	}
	cmd := exec.Command(bin,
		"-n", // no default script: only what cfg loads
		"--daemonize=no",
		"--exit-idle-time=-1",
		"--disallow-exit",
		"--use-pid-file=no",
		// No rtkit over D-Bus (there is no bus) and no nice/rtprio asks.
		"--realtime=no", "--high-priority=no",
		"--log-target=stderr", "--log-level=notice",
		"-F", cfg)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "XDG_RUNTIME_DIR=" + dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p.proc = startCmd(t, filepath.Join(dir, "pulseaudio.log"), cmd)
	if err := p.proc.waitFor(pulseReadyTimeout, func() error {
		_, err := p.run("info")
		return err
	}); err != nil {
		t.Fatalf("pulseaudio not ready: %v\n%s", err, p.proc.logTail(3000))
	}
	if cred != nil {
		renice(t, p.proc.pid(), pulseNice)
	}
	return p
}

// pulseNice is the nice level PulseAudio's --high-priority asks for.
const pulseNice = -11

// renice gives every thread of pid (the null sinks render in threads of
// their own, and Linux keeps a nice level per thread) the nice level a
// desktop daemon gets with --high-priority, which pulseaudio running as
// nobody may not take itself and resets at start-up: on a machine shared
// with builds it keeps the daemon's periods on time.
func renice(t testing.TB, pid, nice int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Logf("renice pulseaudio: %v", err)
		return
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			t.Logf("renice pulseaudio thread %d: %v", tid, err)
		}
	}
}

// run runs pactl against this server and returns its standard output.
func (p *Pulse) run(args ...string) (string, error) {
	cmd := exec.Command(p.pactl, append([]string{"-s", p.Server}, args...)...)
	// pactl reads its cookie and client.conf under HOME: keep it in ours.
	cmd.Env = []string{"HOME=" + p.dir, "XDG_RUNTIME_DIR=" + p.dir, "PATH=/usr/bin:/bin"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pactl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// Pactl runs pactl with args against this server and returns its output,
// failing the test if it fails.
func (p *Pulse) Pactl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// Streams returns the lines of `pactl list short sink-inputs` and
// `source-outputs`: the playback and record streams clients hold open.
func (p *Pulse) Streams(t testing.TB) (sinkInputs, sourceOutputs []string) {
	t.Helper()
	return lines(p.Pactl(t, "list", "short", "sink-inputs")), lines(p.Pactl(t, "list", "short", "source-outputs"))
}

// LogTail returns the end of the daemon's log, for failure messages.
func (p *Pulse) LogTail() string { return p.proc.logTail(3000) }

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Stop stops the daemon now, by PID, for tests of a server going away;
// the cleanup StartPulse registered then has nothing left to stop.
func (p *Pulse) Stop(t testing.TB) {
	t.Helper()
	p.proc.stop(t)
}

// Parec starts libpulse's own recorder on device (raw S16LE mono at rate
// Hz, capture fragments of latency) and returns its standard output; it is
// stopped by PID when the test ends. It is the reference client beside
// hal/audio's PulseSource.
func (p *Pulse) Parec(t testing.TB, device string, rate int, latency time.Duration) io.Reader {
	t.Helper()
	cmd := p.pacatCmd(t, "parec", device, rate, latency)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("parec: %v", err)
	}
	p.startClient(t, cmd)
	return out
}

// Pacat starts libpulse's own player on device (raw S16LE mono at rate
// Hz, buffer target latency) and returns its standard input; it is stopped
// by PID when the test ends. It is the reference client beside hal/audio's
// PulseSink, and plays prepared audio into PulseMicSink.
func (p *Pulse) Pacat(t testing.TB, device string, rate int, latency time.Duration) io.WriteCloser {
	t.Helper()
	cmd := p.pacatCmd(t, "pacat", device, rate, latency)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("pacat: %v", err)
	}
	p.startClient(t, cmd)
	return in
}

func (p *Pulse) pacatCmd(t testing.TB, name, device string, rate int, latency time.Duration) *exec.Cmd {
	t.Helper()
	bin := requireBinary(t, name)
	cmd := exec.Command(bin, "-s", p.Server, "-d", device, "--raw", "--format=s16le", "--channels=1",
		"--rate="+strconv.Itoa(rate), "--latency-msec="+strconv.Itoa(int(latency/time.Millisecond)),
		"--client-name=hardphone-test-"+name)
	cmd.Env = []string{"HOME=" + p.dir, "XDG_RUNTIME_DIR=" + p.dir, "PATH=/usr/bin:/bin"}
	return cmd
}

// startClient starts a pacat/parec whose stdio the caller piped, logging its
// stderr, and stops it by PID at cleanup.
func (p *Pulse) startClient(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.CreateTemp(p.dir, filepath.Base(cmd.Path)+"-*.log")
	if err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM) // ESRCH once it has exited
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	})
}
