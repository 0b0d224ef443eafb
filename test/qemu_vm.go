package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MarkerPrefix starts the console lines hardphone's PID 1 prints for tests
// (cmd/hardphone/init_linux.go).
const MarkerPrefix = "HARDPHONE-MARKER "

// uBootBin is Debian's U-Boot for QEMU's virt machine (package u-boot-qemu).
const uBootBin = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// QEMUConfig is one power-on of the emulated phone (board qemu-arm64).
type QEMUConfig struct {
	// Disk is the raw disk image (hpctl image build's disk.img); QEMU
	// writes to it. Flash is U-Boot's environment flash (flash1.img),
	// attached read-only.
	Disk, Flash string
	// TPMState is the swtpm state directory: the phone's TPM. It persists
	// across power-ons.
	TPMState string
	// Medium, when set, is an image attached as a second virtio disk (the
	// update medium, /dev/vdb in the guest).
	Medium string
	// SIPPort is the port on 127.0.0.1 that the guest's 10.0.2.100:5061
	// reaches; QEMU's user network allows nothing else (restrict=on).
	SIPPort int
	// FleetPort, when set, is the port on 127.0.0.1 that the guest's
	// 10.0.2.101:8443 reaches: the fleet server.
	FleetPort int
	// ImageRepoPort, when set, is the port on 127.0.0.1 that the guest's
	// 10.0.2.102:80 reaches: the vendor's image repository (plain HTTP,
	// any server; what it serves is verified).
	ImageRepoPort int
	// Dir holds the console log and helper logs.
	Dir string
	// Echo, when not nil, gets every console line as it arrives (make qemu
	// puts the serial console on the terminal this way).
	Echo io.Writer
}

// QEMU is a running qemu-system-aarch64 with its swtpm, started by
// StartQEMU (or StartQEMUKernel, without a TPM) and killed by PID at
// cleanup (or by Kill, a power cut).
type QEMU struct {
	// Log is the serial console, as read.
	Log     string
	Started time.Time

	cmd   *exec.Cmd
	swtpm *process // nil without a TPM
	done  chan struct{}
	err   error // valid after done

	mu      sync.Mutex
	lines   []consoleLine // guarded by mu
	changed chan struct{} // closed and replaced on every line, guarded by mu
	cursor  int           // next line WaitMarker and WaitLine look at; test goroutine only
}

type consoleLine struct {
	text string
	at   time.Duration // since Started
}

// Marker is one HARDPHONE-MARKER line.
type Marker struct {
	Event  string
	Fields map[string]string
	Line   string
	// At is when the test read it, since QEMU was started.
	At time.Duration
}

// StartQEMU powers the phone on: swtpm on c.TPMState, then QEMU with
// Debian's U-Boot, the disk, the TPM and the restricted user network. It
// skips (fails under CI=true) when a program is missing.
func StartQEMU(t testing.TB, c QEMUConfig) *QEMU {
	t.Helper()
	qemu := requireBinary(t, "qemu-system-aarch64")
	swtpmBin := requireBinary(t, "swtpm")
	socat := requireBinary(t, "socat")
	if _, err := os.Stat(uBootBin); err != nil {
		missing(t, "U-Boot for QEMU (Debian package u-boot-qemu): %v", err)
	}
	requireNetns(t)
	runDir, err := os.MkdirTemp("", "qemu-tpm-")
	if err != nil {
		t.Fatalf("StartQEMU: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	sock := filepath.Join(runDir, "ctrl.sock")
	// No --flags startup-clear: the guest kernel starts the TPM itself.
	// --terminate: swtpm exits when QEMU goes, as a TPM loses power.
	tpm := startProcess(t, filepath.Join(c.Dir, "swtpm.log"), runDir, swtpmBin, "socket", "--tpm2",
		"--tpmstate", "dir="+c.TPMState, "--ctrl", "type=unixio,path="+sock, "--terminate")
	if err := tpm.waitFor(swtpmReadyTimeout, func() error { _, err := os.Stat(sock); return err }); err != nil {
		t.Fatalf("StartQEMU: swtpm: %v\n%s", err, tpm.logTail(2000))
	}
	fwd := fmt.Sprintf("guestfwd=tcp:10.0.2.100:5061-cmd:%s -lf %s - TCP:127.0.0.1:%d", socat, filepath.Join(c.Dir, "socat.log"), c.SIPPort)
	if c.FleetPort != 0 {
		fwd += fmt.Sprintf(",guestfwd=tcp:10.0.2.101:8443-cmd:%s -lf %s - TCP:127.0.0.1:%d", socat, filepath.Join(c.Dir, "socat-fleet.log"), c.FleetPort)
	}
	if c.ImageRepoPort != 0 {
		fwd += fmt.Sprintf(",guestfwd=tcp:10.0.2.102:80-cmd:%s -lf %s - TCP:127.0.0.1:%d", socat, filepath.Join(c.Dir, "socat-image.log"), c.ImageRepoPort)
	}
	args := []string{"-M", "virt", "-cpu", "cortex-a53", "-smp", "1", "-m", "512",
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-bios", uBootBin,
		"-drive", "if=pflash,format=raw,index=1,readonly=on,file=" + c.Flash,
		"-drive", "if=none,id=hd0,format=raw,file=" + c.Disk, "-device", "virtio-blk-pci,drive=hd0",
		"-chardev", "socket,id=chrtpm,path=" + sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-tis-device,tpmdev=tpm0",
		"-netdev", "user,id=n0,restrict=on,ipv6=off," + fwd, "-device", "virtio-net-pci,netdev=n0,romfile=",
	}
	if c.Medium != "" {
		args = append(args, "-drive", "if=none,id=hd1,format=raw,file="+c.Medium, "-device", "virtio-blk-pci,drive=hd1")
	}
	return startQEMUProcess(t, qemu, args, c.Dir, c.Echo, tpm)
}

// startQEMUProcess starts QEMU with args, reads its serial console (stdout)
// into lines and the console log in dir, and kills it by process group at
// cleanup, then tpm (nil: no TPM).
func startQEMUProcess(t testing.TB, qemu string, args []string, dir string, echo io.Writer, tpm *process) *QEMU {
	t.Helper()
	v := &QEMU{Log: filepath.Join(dir, fmt.Sprintf("console-%d.log", time.Now().UnixNano())), swtpm: tpm,
		done: make(chan struct{}), changed: make(chan struct{})}
	logf, err := os.Create(v.Log)
	if err != nil {
		t.Fatalf("StartQEMU: %v", err)
	}
	v.cmd = exec.Command(qemu, args...)
	v.cmd.Stderr = logf
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("StartQEMU: %v", err)
	}
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	v.Started = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("StartQEMU: %s: %v", qemu, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(logf, line)
			if echo != nil {
				fmt.Fprintln(echo, line)
			}
			v.mu.Lock()
			v.lines = append(v.lines, consoleLine{text: line, at: time.Since(v.Started)})
			close(v.changed)
			v.changed = make(chan struct{})
			v.mu.Unlock()
		}
		v.err = v.cmd.Wait()
		logf.Close()
		close(v.done)
	}()
	t.Cleanup(func() { v.Kill(t) })
	return v
}

// Kill cuts the power: QEMU is killed, and swtpm follows it.
func (v *QEMU) Kill(t testing.TB) {
	t.Helper()
	select {
	case <-v.done:
	default:
		// ESRCH: it exited on its own meanwhile.
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		<-v.done
	}
	if v.swtpm != nil {
		v.swtpm.stop(t)
	}
}

// Done is closed when QEMU has ended.
func (v *QEMU) Done() <-chan struct{} { return v.done }

// Exited reports whether QEMU has ended.
func (v *QEMU) Exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// WaitMarker waits for the next HARDPHONE-MARKER line with this event after
// the lines already consumed and returns it; the lines up to it are then
// consumed. A marker the guest printed with "event=value" form, such as
// "floor=2", is matched by its whole first word.
func (v *QEMU) WaitMarker(t testing.TB, event string, timeout time.Duration) Marker {
	t.Helper()
	var m Marker
	v.wait(t, "marker "+event, timeout, func(l consoleLine) bool {
		mk, ok := ParseMarker(l.text)
		if !ok || mk.Event != event {
			return false
		}
		m, m.At = mk, l.at
		return true
	})
	return m
}

// WaitMarkers waits until every one of events has been printed after the
// lines already consumed, in any order (markers from one poll of PID 1's
// loop come in no fixed order), and returns the first of each; the lines
// up to the last of them are then consumed.
func (v *QEMU) WaitMarkers(t testing.TB, timeout time.Duration, events ...string) map[string]Marker {
	t.Helper()
	found := map[string]Marker{}
	v.wait(t, "markers "+strings.Join(events, ", "), timeout, func(l consoleLine) bool {
		mk, ok := ParseMarker(l.text)
		if !ok {
			return false
		}
		for _, e := range events {
			if _, seen := found[e]; !seen && mk.Event == e {
				mk.At = l.at
				found[e] = mk
			}
		}
		return len(found) == len(events)
	})
	return found
}

// WaitLine waits for the next console line containing substr and returns
// it with the time since start.
func (v *QEMU) WaitLine(t testing.TB, substr string, timeout time.Duration) (string, time.Duration) {
	t.Helper()
	var text string
	var at time.Duration
	v.wait(t, fmt.Sprintf("line %q", substr), timeout, func(l consoleLine) bool {
		if !strings.Contains(l.text, substr) {
			return false
		}
		text, at = l.text, l.at
		return true
	})
	return text, at
}

// Markers returns every marker with this event printed so far, consumed or
// not.
func (v *QEMU) Markers(event string) []Marker {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Marker
	for _, l := range v.lines {
		if m, ok := ParseMarker(l.text); ok && m.Event == event {
			m.At = l.at
			out = append(out, m)
		}
	}
	return out
}

func (v *QEMU) wait(t testing.TB, what string, timeout time.Duration, match func(consoleLine) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		v.mu.Lock()
		lines, changed := v.lines, v.changed
		v.mu.Unlock()
		for ; v.cursor < len(lines); v.cursor++ {
			if match(lines[v.cursor]) {
				v.cursor++
				return
			}
		}
		select {
		case <-changed:
		case <-v.done:
			v.mu.Lock()
			more := len(v.lines) > v.cursor
			v.mu.Unlock()
			if !more {
				t.Fatalf("QEMU exited (%v) before %s; console %s:\n%s", v.err, what, v.Log, v.tail(60))
			}
		case <-deadline:
			t.Fatalf("no %s within %v; console %s:\n%s", what, timeout, v.Log, v.tail(60))
		}
	}
}

// tail returns the last n console lines.
func (v *QEMU) tail(n int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := max(0, len(v.lines)-n)
	var b strings.Builder
	for _, l := range v.lines[start:] {
		fmt.Fprintf(&b, "%7.3fs %s\n", l.at.Seconds(), l.text)
	}
	return b.String()
}

// ParseMarker parses a HARDPHONE-MARKER line: an event word, then
// key=value pairs whose values may be Go-quoted.
func ParseMarker(line string) (Marker, bool) {
	i := strings.Index(line, MarkerPrefix)
	if i < 0 {
		return Marker{}, false
	}
	rest := line[i+len(MarkerPrefix):]
	event, rest, _ := strings.Cut(rest, " ")
	m := Marker{Event: event, Fields: map[string]string{}, Line: line[i:]}
	for rest = strings.TrimLeft(rest, " "); rest != ""; rest = strings.TrimLeft(rest, " ") {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		val := after
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				break
			}
			val, rest = q, after[len(q):]
			if u, err := strconv.Unquote(q); err == nil {
				val = u
			}
		} else {
			val, rest, _ = strings.Cut(after, " ")
		}
		m.Fields[k] = val
	}
	return m, true
}

// errNoMarker is returned by MarkerField for an absent key.
var errNoMarker = errors.New("marker has no such field")

// Field returns a marker field or an error naming the line.
func (m Marker) Field(key string) (string, error) {
	v, ok := m.Fields[key]
	if !ok {
		return "", fmt.Errorf("%w %q: %s", errNoMarker, key, m.Line)
	}
	return v, nil
}

// Timeline returns the marker lines, the boot script's HPBOOT lines and
// the updater's install lines read so far, each with its time since QEMU
// started: what a passing scenario logs.
func (v *QEMU) Timeline() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, l := range v.lines {
		if strings.Contains(l.text, MarkerPrefix) || strings.HasPrefix(l.text, "HPBOOT ") ||
			strings.Contains(l.text, `component=update`) || strings.Contains(l.text, "softdog") {
			fmt.Fprintf(&b, "%7.3fs %s\n", l.at.Seconds(), l.text)
		}
	}
	return b.String()
}
