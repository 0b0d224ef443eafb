package pid1

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/system"
)

// PID 1 on a phone. The kernel starts /init from the slot's initramfs; it
// is this binary. It sets the system up (mounts, modules, network,
// watchdog), starts the agent as its child, judges the boot by what the
// agent reports and pets the watchdog only while the boot is healthy, and
// owns poweroff and reboot. It never returns: a PID 1 that exits panics
// the kernel, which (panic=-1) resets the board.

const (
	// boardFile names the board, one line; moduleDir holds NAME.ko (or
	// NAME.ko.xz) for each of the board's modules. The image builder
	// writes both into the root filesystem.
	boardFile = "/etc/hardphone/board"
	moduleDir = "/lib/modules/hardphone"
	// markerName starts the console lines tests judge a boot by.
	markerName = "HARDPHONE-MARKER"
	stateMode  = os.FileMode(0o700)
	devWait    = 10 * time.Second       // for a device node to appear
	stopGrace  = 5 * time.Second        // for the agent to exit on SIGTERM
	mediumWait = 300 * time.Millisecond // for an update medium's node
	installMax = 10 * time.Minute       // for one install from a medium
)

// RunIfPID1 runs the init path when this process is PID 1 and never
// returns then; otherwise it returns at once and hardphone runs as an
// ordinary command (a desktop, or a phone under another init).
func RunIfPID1() {
	if os.Getpid() != 1 {
		return
	}
	runInit()
}

// markers prints the console lines a test judges a boot by:
// "HARDPHONE-MARKER <event> key=value ... t=<ms since PID 1 started>".
type markers struct {
	start time.Time
	w     io.Writer // the console
}

func (m markers) print(event string, kv ...any) {
	var b strings.Builder
	b.WriteString(markerName + " " + event)
	for i := 0; i+1 < len(kv); i += 2 {
		v := fmt.Sprint(kv[i+1])
		if v == "" || strings.ContainsAny(v, " \t\"=") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %v=%s", kv[i], v)
	}
	fmt.Fprintf(&b, " t=%d up=%s\n", time.Since(m.start).Milliseconds(), uptime())
	// One write per line, so the agent's log lines on the same console do
	// not split it. A console that fails has no one to tell.
	_, _ = io.WriteString(m.w, b.String())
}

// uptime is the time since the kernel started, from CLOCK_BOOTTIME.
func uptime() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return "?"
	}
	return (time.Duration(ts.Nano()) / time.Millisecond * time.Millisecond).String()
}

func runInit() {
	mk := markers{start: time.Now(), w: os.Stdout}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "init")
	b, err := setUp(mk, log)
	if err != nil {
		mk.print("fatal", "error", err)
		log.Error("system setup failed; resetting the board", "error", err)
		// Give the console a moment, then reset: the bootloader counts the
		// attempt and falls back when this slot keeps failing.
		time.Sleep(time.Second)
		powerDown(unix.LINUX_REBOOT_CMD_RESTART, b, log)
	}
	s := newSupervisor(b, mk, log)
	cmd := s.run()
	powerDown(cmd, b, log)
}

// setUp mounts the pseudo filesystems and the data partition, loads the
// board's modules and brings up the network; the supervisor arms the
// watchdog. On error the board is nil only when even the board file was
// unreadable.
func setUp(mk markers, log *slog.Logger) (*board.Board, error) {
	// Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		log.Warn("ctrl-alt-del stays a hard reboot", "error", err)
	}
	for _, m := range []struct {
		fstype, target string
		flags          uintptr
		data           string
	}{
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0755"},
		{"tmpfs", "/run", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0755"},
		{"tmpfs", "/tmp", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=1777"},
	} {
		if err := mount(m.fstype, m.fstype, m.target, m.flags, m.data); err != nil {
			return nil, err
		}
	}
	name, err := os.ReadFile(boardFile)
	if err != nil {
		return nil, fmt.Errorf("board: %w", err)
	}
	b, err := board.Lookup(strings.TrimSpace(string(name)))
	if err != nil {
		return nil, err
	}
	mk.print("init", "board", b.Name, "slot", system.BootedSlot(b))
	start := time.Now()
	for _, m := range b.Modules {
		if err := system.LoadModule(moduleDir, m); err != nil {
			return b, err
		}
	}
	mk.print("modules", "loaded", len(b.Modules), "ms", time.Since(start).Milliseconds())
	if b.Network != nil {
		if err := system.Network(b.Network, devWait); err != nil {
			return b, err
		}
		mk.print("network", "interface", b.Network.Interface, "address", b.Network.Address)
	}
	if b.Data != nil {
		if err := system.WaitDevice(b.Data.Device, devWait); err != nil {
			return b, err
		}
		flags, data := mountFlags(b.Data.Flags)
		if err := mount(b.Data.Device, b.Data.FSType, b.Data.Mountpoint, flags, data); err != nil {
			return b, err
		}
	}
	if b.StateDir != "" {
		if err := os.MkdirAll(b.StateDir, stateMode); err != nil {
			return b, fmt.Errorf("state dir: %w", err)
		}
	}
	// Before anything checks a certificate: a clock behind the time floor
	// (no RTC, or one wound back) is set forward to it.
	c, err := system.SetClockFromFloor(b.StateDir)
	if err != nil {
		log.Warn("clock", "error", err)
	}
	mk.print("clock", "set", c.Set, "was", c.Was.Format(time.RFC3339), "now", c.Now.Format(time.RFC3339), "floor_source", c.Source)
	if err := os.MkdirAll(filepath.Dir(b.ControlSocket), 0o700); err != nil {
		return b, fmt.Errorf("control socket dir: %w", err)
	}
	if b.TPM != "" {
		if err := system.WaitDevice(b.TPM, devWait); err != nil {
			return b, err
		}
	}
	return b, nil
}

func mount(source, fstype, target string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount %s (%s) on %s: %w", source, fstype, target, err)
	}
	return nil
}

// mountFlags turns "nosuid,nodev,noexec,ro" into mount(2) flags; other
// words go to the filesystem as data.
func mountFlags(opts string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "ro":
			flags |= unix.MS_RDONLY
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "noatime":
			flags |= unix.MS_NOATIME
		default:
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

// powerDown syncs, unmounts the data partition and powers off or resets
// (cmd is a LINUX_REBOOT_CMD_*). It does not return.
func powerDown(cmd int, b *board.Board, log *slog.Logger) {
	unix.Sync()
	if b != nil && b.Data != nil {
		if err := unix.Unmount(b.Data.Mountpoint, 0); err != nil {
			// Something still holds it open: read-only is as good for a
			// clean journal.
			if rerr := unix.Mount("", b.Data.Mountpoint, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr != nil {
				log.Warn("data partition stays mounted read-write", "error", errors.Join(err, rerr))
			}
		}
	}
	unix.Sync()
	if err := unix.Reboot(cmd); err != nil {
		log.Error("reboot", "error", err)
	}
	// Nothing left to do: wait for the reset (or the watchdog).
	for {
		time.Sleep(time.Hour)
	}
}
