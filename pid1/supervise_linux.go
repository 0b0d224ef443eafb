package pid1

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/internal/resident"
	"github.com/hardphone/hardphone/system"
)

// controlTimeout bounds one question to the agent; a hung agent must not
// hang PID 1's loop.
const controlTimeout = 2 * time.Second

// watchdogDevice is the board's watchdog as the supervisor uses it.
type watchdogDevice interface {
	Pet() error
	Timeout() time.Duration
}

// exit is one child PID 1 reaped.
type exit struct {
	pid    int
	status unix.WaitStatus
}

// supervisor runs the agent under PID 1 and judges the boot. Every field
// is owned by the goroutine in run, except healthy and lastTick, which the
// watchdog goroutine reads.
type supervisor struct {
	b     *board.Board
	mk    markers
	log   *slog.Logger
	wd    watchdogDevice  // nil: the board has none, PID 1 resets by itself
	agent *control.Client // the agent's control socket
	// argv starts the agent: this binary's `run` with the board's config.
	argv []string

	start time.Time
	slot  string // booted slot, from the kernel command line

	agentPID     int // 0 while no agent runs
	agentStarted time.Time
	lastAnswer   time.Time // last time the control socket answered
	agentExits   int       // exits since the last healthy run
	gaveUp       bool      // MaxAgentExits reached
	restart      <-chan time.Time

	registered  bool
	reported    bool // first update-status seen
	firstState  string
	initialLeft int    // the booted slot's attempt counter as the bootloader left it; -1 unknown
	trial       bool   // the booted slot is pending: it must be confirmed in time
	markedGood  bool   // the agent marked the booted slot good in this boot
	confirmed   bool   // the agent confirmed this boot (counter restored), or marked it good
	accounts    string // why the accounts are where they are, from the last agent status
	belowFloor  bool   // the booted slot is below the anti-rollback floor
	rebootFor   string // "" or why PID 1 reboots at once (the next boot is another slot's)
	rebootWaits bool   // a fleet update waits for the calls to end (marker printed)
	floor       uint64
	floorShown  bool
	rollback    bool
	settled     bool // the status line after marked-good was printed
	mediumTried bool
	unhealthy   string // why PID 1 stopped petting, "" while healthy

	healthy  atomic.Bool
	lastTick atomic.Int64 // unix nanoseconds of the loop's last pass
	// quiet is set while the boot is judged good and nothing is in flight
	// (no agent start, no install): PID 1 may release its code pages.
	quiet      atomic.Bool
	installing bool // an install from the medium runs
	// agentReleased: the agent's first code release was printed.
	agentReleased bool

	exits       chan exit
	sigs        chan os.Signal
	installDone chan installOutcome
}

func newSupervisor(b *board.Board, mk markers, log *slog.Logger) *supervisor {
	s := &supervisor{b: b, mk: mk, log: log, start: mk.start, slot: system.BootedSlot(b), initialLeft: -1,
		agent: control.NewClient(b.ControlSocket), argv: []string{"hardphone", "run", "--config", b.Config, "--log-format", "text"},
		exits: make(chan exit, 16), sigs: make(chan os.Signal, 4), installDone: make(chan installOutcome, 1)}
	s.healthy.Store(true)
	return s
}

// run supervises until a signal or an installed update asks for a power
// change and returns the LINUX_REBOOT_CMD_* to apply.
func (s *supervisor) run() int {
	signal.Notify(s.sigs, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPWR)
	// Subscribed before the first child exists, so no exit goes unreaped.
	sigchld := make(chan os.Signal, 8)
	signal.Notify(sigchld, unix.SIGCHLD)
	go s.reap(sigchld)
	wd, err := system.OpenWatchdog(s.b, devWait)
	if err != nil {
		s.fail(fmt.Sprintf("watchdog: %v", err))
	} else if wd != nil {
		s.wd = wd
		s.mk.print("watchdog", "device", s.b.Watchdog.Device, "timeout", wd.Timeout())
		go s.petWatchdog()
	}
	s.readEnv()
	s.startAgent()
	// PID 1 ran every package's start-up like the agent and then only
	// polls: once the boot is judged it gives those pages back.
	if r, err := resident.NewReleaser(releaseQuiet, func() bool { return !s.quiet.Load() }, s.log); err == nil {
		go s.releaseCode(r)
	}
	tick := time.NewTicker(s.b.Health.Poll)
	defer tick.Stop()
	for {
		s.lastTick.Store(time.Now().UnixNano())
		select {
		case sig := <-s.sigs:
			cmd := unix.LINUX_REBOOT_CMD_RESTART
			if sig == unix.SIGUSR1 || sig == unix.SIGUSR2 || sig == unix.SIGPWR {
				cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
			}
			s.mk.print("shutdown", "signal", sig)
			s.stopAgent()
			return cmd
		case e := <-s.exits:
			s.onExit(e)
		case <-s.restart:
			s.restart = nil
			s.startAgent()
		case o := <-s.installDone:
			s.installing = false
			if s.onInstalled(o) {
				s.stopAgent()
				s.mk.print("reboot", "reason", "update")
				return unix.LINUX_REBOOT_CMD_RESTART
			}
		case now := <-tick.C:
			s.poll(now)
			if s.rebootFor != "" {
				s.stopAgent()
				s.mk.print("reboot", "reason", s.rebootFor)
				return unix.LINUX_REBOOT_CMD_RESTART
			}
		}
	}
}

// reap waits for every child, the agent and any orphan the kernel hands to
// PID 1, and reports each exit.
func (s *supervisor) reap(sigchld <-chan os.Signal) {
	for range sigchld {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			s.exits <- exit{pid: pid, status: ws}
		}
	}
}

// petWatchdog pets while the boot is healthy and the supervisor loop is
// alive; once either stops, the board resets after the timeout.
func (s *supervisor) petWatchdog() {
	t := time.NewTicker(s.wd.Timeout() / 4)
	defer t.Stop()
	for range t.C {
		stale := time.Since(time.Unix(0, s.lastTick.Load())) > s.b.Health.Liveness
		if !s.healthy.Load() || stale {
			continue
		}
		if err := s.wd.Pet(); err != nil {
			s.log.Error("pet watchdog", "error", err)
		}
	}
}

func (s *supervisor) startAgent() {
	if s.gaveUp || s.unhealthy != "" {
		return
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		s.fail(fmt.Sprintf("start agent: %v", err))
		return
	}
	defer devnull.Close()
	p, err := os.StartProcess("/proc/self/exe", s.argv, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=/", "HOME=" + s.b.StateDir, "TMPDIR=/tmp"},
		Files: []*os.File{devnull, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		s.fail(fmt.Sprintf("start agent: %v", err))
		return
	}
	s.agentPID, s.agentStarted = p.Pid, time.Now()
	s.agentReleased = false
	// PID 1's reaper collects the exit status; os.Process must not wait.
	if err := p.Release(); err != nil {
		s.log.Warn("release agent process", "error", err)
	}
	s.mk.print("agent-start", "pid", s.agentPID)
}

func (s *supervisor) onExit(e exit) {
	if e.pid != s.agentPID {
		return
	}
	s.agentPID = 0
	s.agentExits++
	s.mk.print("agent-exit", "status", e.status.ExitStatus(), "signaled", e.status.Signaled(), "exits", s.agentExits)
	if s.agentExits >= s.b.Health.MaxAgentExits {
		s.gaveUp = true
		s.evaluate(time.Now())
		return
	}
	// Back off a little: a crash loop should not starve the console.
	s.restart = time.After(time.Duration(s.agentExits) * 500 * time.Millisecond)
}

// stopAgent sends SIGTERM and waits for the exit, then kills.
func (s *supervisor) stopAgent() {
	if s.agentPID == 0 {
		return
	}
	pid := s.agentPID
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		s.log.Warn("stop agent", "pid", pid, "error", err)
	}
	deadline := time.After(stopGrace)
	for {
		select {
		case e := <-s.exits:
			if e.pid == pid {
				s.agentPID = 0
				return
			}
		case <-deadline:
			s.log.Warn("agent did not exit on SIGTERM; killing it", "pid", pid)
			if err := unix.Kill(pid, unix.SIGKILL); err != nil {
				s.log.Warn("kill agent", "pid", pid, "error", err)
			}
			s.agentPID = 0
			return
		}
	}
}

// readEnv records the booted slot's attempt counter as the bootloader left
// it, before the agent can touch it: mark-good restores it, which is how a
// slot that was already good shows it passed this boot too.
func (s *supervisor) readEnv() {
	if s.b.Env == nil {
		return
	}
	st, err := system.ReadBootState(s.b)
	if err != nil {
		s.log.Warn("read boot environment", "error", err)
		return
	}
	left, ok := st.Left[s.slot]
	if ok {
		s.initialLeft = left
	}
	leftText := ""
	if ok {
		leftText = fmt.Sprint(left)
	}
	s.mk.print("bootenv", "order", strings.Join(st.Order, ","), "left", leftText)
}

// ask runs one control request with a deadline: a hung agent must not hang
// PID 1's loop.
func (s *supervisor) ask(timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return f(ctx)
}

// poll asks the agent for its status and the updater's, prints what
// changed and re-judges the boot.
func (s *supervisor) poll(now time.Time) {
	if s.agentPID != 0 {
		var st *control.Status
		if err := s.ask(controlTimeout, func(ctx context.Context) (err error) {
			st, err = s.agent.Status(ctx)
			return err
		}); err == nil {
			s.lastAnswer = time.Now()
			s.onStatus(st)
		}
		if s.b.Env != nil {
			var us *system.UpdateStatus
			if err := s.ask(controlTimeout, func(ctx context.Context) (err error) {
				us, err = s.agent.UpdateStatus(ctx)
				return err
			}); err == nil {
				s.onUpdateStatus(us)
			}
		}
	}
	s.evaluate(now)
	s.quiet.Store(s.confirmed && s.registered && s.agentPID != 0 && !s.installing && s.unhealthy == "" && s.rebootFor == "")
}

// releaseQuiet is how long PID 1 waits, quiet, before it releases its
// code pages (and again after new ones were faulted in).
const releaseQuiet = 10 * time.Second

// releaseCode runs the releaser for the rest of the boot and prints a
// marker at the first release, with PID 1's resident memory after it.
func (s *supervisor) releaseCode(r *resident.Releaser) {
	go r.Run(context.Background())
	for {
		time.Sleep(releaseQuiet)
		if st := r.Status(); st.Count > 0 {
			if st.Err != nil {
				s.log.Warn("releasing PID 1's code pages", "error", st.Err)
				return
			}
			rss, anon := memKiB(os.Getpid())
			s.mk.print("code-released", "before_kib", st.Result.BeforeKiB, "after_kib", st.Result.AfterKiB, "rss_kib", rss, "anon_kib", anon)
			return
		}
	}
}

// memKiB is a process's resident set and its anonymous part in KiB, -1
// when unknown.
func memKiB(pid int) (rss, anon int) {
	rss, anon = -1, -1
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rss, anon
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		var n int
		if _, err := fmt.Sscan(f[1], &n); err != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "RssAnon:":
			anon = n
		}
	}
	return rss, anon
}

func (s *supervisor) onStatus(st *control.Status) {
	all := len(st.Accounts) > 0
	for _, a := range st.Accounts {
		all = all && a.Registered
	}
	if all && !s.registered {
		s.mk.print("registered", "slot", s.slot, "accounts", len(st.Accounts), "credentials", st.Credentials)
		s.agentExits = 0
	}
	s.registered = all
	s.accounts = accountsReason(st)
	if s.b.Env == nil && all && !s.markedGood {
		// Without an updater a registered agent is the whole health check.
		s.markedGood, s.confirmed = true, true
	}
	s.fleetFirmware(st)
	if c := st.Runtime.CodeRelease; c != nil && c.Count > 0 && !s.agentReleased {
		s.agentReleased = true
		if c.Error != "" {
			s.mk.print("agent-code-release-failed", "error", c.Error)
		} else {
			rss, anon := memKiB(s.agentPID)
			s.mk.print("agent-code-released", "before_kib", c.BeforeKiB, "after_kib", c.AfterKiB, "rss_kib", rss, "anon_kib", anon)
		}
	}
}

// fleetFirmware reboots into a bundle the fleet's director assigned once
// the agent has installed it in the other slot (it installs only inside
// the device's maintenance window): as soon as this boot is confirmed (a
// slot on trial is judged by its own rules first) and no call is up. A
// call delays it; the marker says so once.
func (s *supervisor) fleetFirmware(st *control.Status) {
	p := st.Provisioning
	if p == nil || p.Firmware == nil || p.Firmware.State != control.FirmwareInstalled || !s.confirmed || s.rebootFor != "" {
		return
	}
	calls := 0
	for _, a := range st.Accounts {
		calls += len(a.Calls)
	}
	if calls > 0 {
		if !s.rebootWaits {
			s.rebootWaits = true
			s.mk.print("reboot-waits", "reason", "fleet-update", "version", p.Firmware.Version, "calls", calls)
		}
		return
	}
	s.rebootFor = "fleet-update"
}

// accountsReason sums up the accounts for the confirmed marker:
// "registered", "registrar-unreachable" when every account that is not
// registered cannot reach its registrar at the network level, else the
// first account's error class.
func accountsReason(st *control.Status) string {
	reason := "registered"
	for _, a := range st.Accounts {
		switch {
		case a.Registered:
		case a.ErrorClass == system.RegistrarUnreachable:
			reason = "registrar-unreachable"
		default:
			if a.ErrorClass == "" {
				return "registering"
			}
			return a.ErrorClass
		}
	}
	return reason
}

func (s *supervisor) onUpdateStatus(us *system.UpdateStatus) {
	var booted *system.SlotStatus
	for i := range us.Slots {
		if us.Slots[i].Booted {
			booted = &us.Slots[i]
		}
	}
	if booted == nil {
		return
	}
	if !s.reported {
		s.reported, s.firstState = true, booted.State
	}
	s.trial = booted.State == system.SlotPending
	if us.Rollback && !s.rollback {
		s.rollback = true
		s.mk.print("rollback", "slot", us.BootedSlot, "detail", us.RollbackDetail)
	}
	if us.BelowFloor && !s.belowFloor {
		// A rollback attack: this slot is never blessed. When the agent
		// restored a slot at or above the floor, boot it now rather than
		// run the old firmware until the next power cycle.
		s.belowFloor = true
		s.mk.print("rollback-attack", "slot", us.BootedSlot, "security_version", booted.SecurityVersion,
			"floor", us.Floor.Value, "next", us.NextSlot, "detail", us.BelowFloorDetail)
		s.printStatus(us)
		if us.NextSlot != "" && us.NextSlot != us.BootedSlot {
			s.rebootFor = "below-floor"
		}
		return
	}
	if !s.markedGood && us.BootMarkedGood {
		s.markedGood, s.confirmed = true, true
		s.mk.print("marked-good", "slot", us.BootedSlot, "version", booted.Version, "security_version", booted.SecurityVersion)
	}
	if !s.confirmed && us.BootConfirmed {
		s.confirmed = true
		left := ""
		if booted.AttemptsLeft != nil {
			left = fmt.Sprint(*booted.AttemptsLeft)
		}
		s.mk.print("confirmed", "slot", us.BootedSlot, "state", booted.State, "left", left, "accounts", s.accounts)
		s.printStatus(us)
	}
	// After marked-good: the floor advances only once the slot passed.
	if !s.floorShown || us.Floor.Value != s.floor {
		s.floorShown, s.floor = true, us.Floor.Value
		s.mk.print("floor="+fmt.Sprint(us.Floor.Value), "kind", us.Floor.Kind)
	}
	// MarkGood writes the slot record before it advances the floor, and
	// takes the slots the floor passed out of the order last (the order
	// that survives a power cut): settle once all are written, so the
	// status line shows the advanced floor and the pruned order.
	pruned := true
	for _, sl := range us.Slots {
		pruned = pruned && !(sl.BelowFloor && sl.InBootOrder && !sl.Booted)
	}
	if s.markedGood && !s.settled && (us.Floor.Value >= booted.SecurityVersion && pruned || us.Floor.Error != "") {
		s.settled = true
		s.printStatus(us)
		s.maybeInstallFromMedium()
	}
}

// printStatus prints the boot state in one line, for tests that compare
// two boots: "status slot=A order=A,B A=good/3 B=bad/0 floor=2".
func (s *supervisor) printStatus(us *system.UpdateStatus) {
	kv := []any{"slot", us.BootedSlot, "order", strings.Join(us.BootOrder, ",")}
	for _, sl := range us.Slots {
		left := "-"
		if sl.AttemptsLeft != nil {
			left = fmt.Sprint(*sl.AttemptsLeft)
		}
		kv = append(kv, sl.Name, sl.State+"/"+left+"/"+sl.Version)
	}
	kv = append(kv, "floor", us.Floor.Value, "rollback", us.Rollback)
	s.mk.print("status", kv...)
}

// evaluate decides whether the boot is still healthy. Once it is not, PID
// 1 stops petting the watchdog for the rest of this boot, and the reset
// costs the slot one attempt in the bootloader.
func (s *supervisor) evaluate(now time.Time) {
	if s.unhealthy != "" {
		return
	}
	h := s.b.Health
	reason := ""
	switch {
	case s.gaveUp:
		reason = fmt.Sprintf("agent exited %d times", s.agentExits)
	case s.agentPID != 0 && now.Sub(later(s.agentStarted, s.lastAnswer)) > h.Liveness:
		reason = fmt.Sprintf("agent silent for %v", now.Sub(later(s.agentStarted, s.lastAnswer)).Round(time.Millisecond))
	case s.trial && !s.confirmed && now.Sub(s.start) > h.TrialDeadline:
		reason = fmt.Sprintf("slot %s on trial not marked good or confirmed within %v", s.slot, h.TrialDeadline)
	}
	if reason != "" {
		s.fail(reason)
	}
}

// fail stops petting the watchdog; without one, PID 1 resets the board
// itself.
func (s *supervisor) fail(reason string) {
	if s.unhealthy != "" {
		return
	}
	s.unhealthy = reason
	s.healthy.Store(false)
	s.mk.print("unhealthy", "slot", s.slot, "reason", reason, "watchdog", s.wd != nil)
	s.log.Error("boot is not healthy; the watchdog will reset the board", "reason", reason)
	s.quiet.Store(false)
	// The agent may have confirmed this boot (restored the counter) before
	// it started to crash or hang: take that back, so the bootloader
	// counts this attempt and a firmware that fails never stays.
	if s.b.Env != nil && s.initialLeft >= 0 {
		if wrote, err := system.TakeBackBootAttempt(s.b, s.slot, s.initialLeft); err != nil {
			s.log.Error("take back the boot attempt", "error", err)
		} else if wrote {
			s.mk.print("attempt-taken-back", "slot", s.slot, "left", s.initialLeft)
		}
	}
	if s.wd == nil {
		go func() {
			time.Sleep(time.Second)
			s.sigs <- unix.SIGTERM
		}()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
