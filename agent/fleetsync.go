package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/fleetconfig"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/update"
)

// The phone's side of the fleet's repositories. Every check-in cycle, and
// at once when the registrar sends check-sync over an account's flow, the
// agent refreshes the director's and the image repository's metadata
// (agent/uptane: TUF's checks, this device only, fresh only), then:
//
//   - configuration: a document of a new version is fetched (its length
//     and hash checked against the director's targets), validated as an
//     overlay on the image's config (agent/config) and against the parts
//     the agent runs on (the lockdown policy's RTP range); a refusal is
//     recorded with its reason and reported, and the running config stays.
//     A document that passes is stored on trial (agent/fleetconfig) and
//     Run returns ErrConfigChanged: the caller builds the phone again with
//     it. Under a document on trial, every account that was registered
//     before it must register again within [provision] config_trial; the
//     document is then marked good, else the phone reverts to the previous
//     one by itself and reports it (config.revert).
//   - firmware: a bundle the director names and the image repository lists
//     alike (uptane.Resolve) that the phone does not run yet is downloaded
//     (its length and hash checked as it streams) and installed with the
//     updater, in the maintenance window; the outcome is reported.
//   - stale metadata (expired: a frozen server, or a replay): the phone
//     keeps what it runs, refuses the stale metadata, says "stale" in its
//     status and report, and records provision.stale_metadata.

// FleetRepos is what the wiring hands the agent for the fleet's
// repositories.
type FleetRepos struct {
	// Client builds the Uptane client for this device (the director
	// repository is the device's own, known once it enrolled); required.
	Client func(deviceID string) (*uptane.Client, error)
	// Configs is the record of configuration documents; required.
	Configs *fleetconfig.Store
	// Check merges a document over the image's config and validates it:
	// the config the agent would run; required.
	Check func(doc []byte) (*config.Config, error)
	// Firmware downloads an assigned bundle into a private file, checked
	// against its metadata as it streams, and returns its path (the agent
	// removes it). nil: the phone takes no firmware from the fleet.
	Firmware func(ctx context.Context, fw uptane.Firmware) (string, error)
	// Running is the version of the document the agent's config includes
	// (0: the image's config alone); RunningError says why a current
	// document is not included.
	Running      uint64
	RunningError string
}

// WithFleetRepos makes the agent follow the fleet's repositories (with
// WithProvisioning: the director is reached as the enrolled device).
func WithFleetRepos(r FleetRepos) Option {
	return func(a *Agent) error {
		if r.Client == nil || r.Configs == nil || r.Check == nil {
			return errors.New("agent: fleet repositories need a client, the configuration record and a check")
		}
		a.repos = &fleetSync{FleetRepos: r, checkSync: make(chan struct{}, 1), kick: make(chan struct{}, 1), fwKick: make(chan struct{}, 1),
			fwFailures: map[string]fwFailure{}, counters: map[string]uint64{}}
		return nil
	}
}

// Bounds and pacing.
const (
	// checkSyncSpacing is the least time between two check-sync driven
	// refreshes: a registrar (or whoever holds its flow) sending NOTIFYs
	// in a loop costs one refresh per spacing, the rest coalesce.
	checkSyncSpacing = 2 * time.Second
	// maxTrialStarts: an agent that keeps dying under a document on trial
	// (a crash the document causes) reverts it at the next start.
	maxTrialStarts = 3
	// trialPoll is how often the trial looks at the accounts (a status
	// read each, nothing sent).
	trialPoll = 100 * time.Millisecond
	// firmware retries after a failure: from firmwareRetry, doubling up to
	// firmwareRetryMax.
	firmwareRetry    = 15 * time.Minute
	firmwareRetryMax = 24 * time.Hour
	// maxErrorText bounds a reason (api.Provisioning's bound on its
	// last_error too).
	maxErrorText = 512
)

// fleetSync is the agent's state for the fleet's repositories.
type fleetSync struct {
	FleetRepos
	// checkSync asks the sync loop for a refresh on the registrar's
	// word, kick for one of the agent's own (enrolment), fwKick for a
	// look at the assigned firmware only; capacity 1 each, so kicks
	// coalesce.
	checkSync, kick, fwKick chan struct{}

	syncMu sync.Mutex // serialises sync (refresh, config); taken before mu

	mu      sync.Mutex // guards the fields below
	client  *uptane.Client
	device  string
	status  *uptane.Status // after the last refresh; nil before
	lastErr string
	stale   bool
	// pending is the version of a document applied while calls were up
	// (a rotation) that the agent starts on once they end; 0: none.
	pending    uint64
	firmware   *control.FirmwareStatus // nil: none assigned
	assigned   *uptane.Firmware        // the firmware to act on; nil: none
	fwFailures map[string]fwFailure    // by target SHA-256 (hex)
	counters   map[string]uint64
}

type fwFailure struct {
	n    int
	next time.Time
}

func (f *fleetSync) count(name string) {
	f.mu.Lock()
	f.counters[name]++
	f.mu.Unlock()
}

// checkSync takes a check-sync event from an account: a refresh now.
func (a *Agent) checkSync(ev sip.Event) {
	if ev.Kind != sip.EventCheckSync || a.repos == nil {
		return
	}
	a.repos.count("fleet.check_sync")
	kick(a.repos.checkSync)
}

func (a *Agent) kickSync() { kick(a.repos.kick) }

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// syncForReport is the check-in's refresh: metadata and configuration
// now, the firmware handed to the sync loop (a download never holds a
// check-in up).
func (a *Agent) syncForReport(ctx context.Context) {
	if a.sync(ctx) {
		kick(a.repos.fwKick)
	}
}

// fleetClient is the Uptane client, built once the device ID is known.
func (a *Agent) fleetClient() (*uptane.Client, error) {
	f := a.repos
	f.mu.Lock()
	c := f.client
	f.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if a.prov == nil {
		return nil, errors.New("the fleet's repositories need enrolment ([provision])")
	}
	st, err := a.prov.Status()
	if err != nil {
		return nil, err
	}
	c, err = f.Client(st.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("uptane client: %w", err)
	}
	f.mu.Lock()
	f.client, f.device = c, st.DeviceID
	f.mu.Unlock()
	return c, nil
}

// syncLoop refreshes whenever kicked (check-sync, enrolment, a check-in
// that found firmware to install) until ctx ends; check-sync refreshes at
// most once per checkSyncSpacing, whoever sends the NOTIFYs. Firmware
// downloads and installs run here, never in a check-in.
func (a *Agent) syncLoop(ctx context.Context) {
	var lastCheckSync time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.repos.checkSync:
			if wait := checkSyncSpacing - time.Since(lastCheckSync); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			lastCheckSync = time.Now()
			a.sync(ctx)
		case <-a.repos.kick:
			a.sync(ctx)
		case <-a.repos.fwKick:
		}
		a.installFirmware(ctx)
	}
}

// sync runs one refresh and acts on the configuration it names; the
// outcome lands in the status and the next report. It returns once the
// configuration is settled (an applied document restarts the agent), and
// reports whether assigned firmware waits to be installed.
func (a *Agent) sync(ctx context.Context) bool {
	defer a.active()
	f := a.repos
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	c, err := a.fleetClient()
	if err != nil {
		a.setSyncError(err)
		return false
	}
	st, rerr := c.Refresh(ctx)
	if rerr != nil {
		f.count("fleet.refresh_failures")
	}
	// Signed time from the director, verified with the rest: the time
	// floor never again accepts anything checked against an earlier clock.
	if t, ok := c.SignedTime(); ok && a.timeSeen != nil {
		if err := a.timeSeen(t, "director timestamp"); err != nil {
			a.log.Warn("time floor", "error", err)
		}
	}
	a.noteStale(st)
	f.mu.Lock()
	f.status = &st
	f.mu.Unlock()
	if st.Stale {
		a.setSyncError(rerr)
		return false
	}
	asg, err := c.Resolve(c.DeviceID())
	if err != nil {
		a.setSyncError(errors.Join(rerr, err))
		return false
	}
	f.mu.Lock()
	f.assigned = asg.Firmware
	if asg.Firmware == nil {
		f.firmware = nil
	}
	f.mu.Unlock()
	var cerr error
	if asg.Config != nil {
		cerr = a.syncConfig(ctx, c, asg.Config)
	}
	// The refresh's error first: what the last good metadata names is
	// acted on, but the report must say why nothing newer was taken.
	a.setSyncError(errors.Join(rerr, cerr))
	return asg.Firmware != nil && a.firmwareWanted(asg.Firmware)
}

func (a *Agent) setSyncError(err error) {
	f := a.repos
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.lastErr = ""
		return
	}
	f.lastErr = cutText(err.Error())
}

// cutText bounds a reason to maxErrorText bytes of valid UTF-8 (it may
// quote a server: the report must still be canonical JSON).
func cutText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= maxErrorText {
		return s
	}
	s = s[:maxErrorText]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// noteStale records the move into stale metadata once (and logs the way
// back).
func (a *Agent) noteStale(st uptane.Status) {
	f := a.repos
	f.mu.Lock()
	was := f.stale
	f.stale = st.Stale
	f.mu.Unlock()
	switch {
	case st.Stale && !was:
		repo, role := staleRole(st)
		a.log.Error("fleet metadata is stale: keeping the last good configuration", "repository", repo, "role", role)
		a.record(events.Event{Kind: events.KindStaleMetadata, Detail: events.Detail{"repository": repo, "role": role}})
	case !st.Stale && was:
		a.log.Info("fleet metadata fresh again")
	}
}

func staleRole(st uptane.Status) (repo, role string) {
	for _, r := range []uptane.RepoStatus{st.Director, st.Image} {
		if r.Stale {
			return r.Name, r.ExpiredRole
		}
	}
	return "", ""
}

// syncConfig fetches, validates and applies a configuration document the
// director names, when it is new. It returns an error only for what is
// retried at the next refresh (a fetch that failed); a document refused
// is recorded instead.
func (a *Agent) syncConfig(ctx context.Context, c *uptane.Client, cfg *uptane.Config) error {
	f := a.repos
	st, err := f.Configs.State()
	if err != nil {
		return err
	}
	switch {
	case cfg.Version == st.Version():
		return nil
	case st.Reverted != nil && cfg.Version == st.Reverted.Version:
		return nil // reverted: the director must publish a newer one
	case st.Refused != nil && cfg.Version == st.Refused.Version:
		return nil // refused already, and reported
	case cfg.Version < st.Version():
		a.refuseConfig(cfg.Version, fmt.Sprintf("version %d is below the running document's %d", cfg.Version, st.Version()))
		return nil
	}
	doc, err := c.FetchConfig(ctx, cfg)
	if err != nil {
		// The director's or the network's problem, not the document's:
		// retried at the next refresh.
		return fmt.Errorf("configuration document v%d: %w", cfg.Version, err)
	}
	next, err := f.Check(doc)
	if err == nil {
		err = a.checkConfig(next)
	}
	if err == nil {
		err = a.openSealed(next, c.DeviceID(), cfg.Version)
	}
	if err != nil {
		a.refuseConfig(cfg.Version, err.Error())
		return nil
	}
	var watch []string
	for _, acct := range a.accounts {
		if acct.Registered() {
			watch = append(watch, acct.Name())
		}
	}
	// A rotation (the document says what the running one says, but for
	// its sealed passwords, now open in the credential store the running
	// accounts ask at each challenge) must drop no call: the agent starts
	// on it once the calls end. Anything else takes effect at once: a
	// security change never waits for a call an attacker may hold open.
	rotation := false
	if run := runningDoc(st, f.Running); run != nil {
		same, err := config.SealedOnlyChange(run.Data, doc)
		rotation = err == nil && same
	}
	nst, err := f.Configs.Apply(fleetconfig.Doc{Version: cfg.Version, Data: doc}, watch, a.now())
	if err != nil {
		a.refuseConfig(cfg.Version, err.Error())
		return nil
	}
	a.log.Info("fleet configuration applied, on trial", "version", cfg.Version, "sha256", nst.Current.SHA256(),
		"previous", nst.GoodVersion(), "watch", watch, "trial", a.cfg.Provision.ConfigTrial, "rotation", rotation)
	if rotation {
		a.reconfigureWhenIdle(cfg.Version)
		return nil
	}
	a.reconfigure()
	return nil
}

// runningDoc is the stored document of version running (the one the
// agent runs), nil when the agent runs none or the record no longer
// holds it.
func runningDoc(st fleetconfig.State, running uint64) *fleetconfig.Doc {
	for _, d := range []*fleetconfig.Doc{st.Current, st.Previous} {
		if running != 0 && d != nil && d.Version == running {
			return d
		}
	}
	return nil
}

// callsUp reports whether any account has a call (ringing, up or held).
func (a *Agent) callsUp() bool {
	for _, acct := range a.accounts {
		if len(acct.Calls()) > 0 {
			return true
		}
	}
	return false
}

// reconfigureWhenIdle restarts the agent on the applied document now if
// no call is up, else once the last call ends (configWhenIdle).
func (a *Agent) reconfigureWhenIdle(version uint64) {
	f := a.repos
	// pending first, then the look at the calls: a call that ends in
	// between is seen either here or by configWhenIdle.
	f.mu.Lock()
	f.pending = version
	f.mu.Unlock()
	if !a.callsUp() {
		a.reconfigure()
		return
	}
	f.count("config.deferred")
	a.log.Info("fleet configuration applied: the agent starts on it when the calls end", "version", version)
}

// configWhenIdle watches the calls end: the agent starts on a pending
// document once none is left.
func (a *Agent) configWhenIdle(ev sip.Event) {
	if ev.Kind != sip.EventCallEnded || a.repos == nil {
		return
	}
	f := a.repos
	f.mu.Lock()
	pending := f.pending
	f.mu.Unlock()
	if pending == 0 || a.callsUp() {
		return
	}
	a.log.Info("the calls ended: starting on the fleet configuration", "version", pending)
	a.reconfigure()
}

// refuseConfig records a document the phone will not run.
func (a *Agent) refuseConfig(version uint64, reason string) {
	f := a.repos
	if _, err := f.Configs.Refuse(version, reason, a.now()); err != nil {
		a.log.Error("record refused configuration", "error", err)
	}
	f.count("config.refused")
	a.log.Warn("fleet configuration refused; the running configuration stays", "version", version, "reason", reason)
	a.record(events.Event{Kind: events.KindConfigRevert, Detail: events.Detail{
		"action": "refused", "version": strconv.FormatUint(version, 10), "reason": cutText(reason)}})
}

// reconfigure ends Run with ErrConfigChanged.
func (a *Agent) reconfigure() {
	a.mu.Lock()
	a.changed = true
	stop := a.stopRun
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// now is the agent's clock for records: the time floor.
func (a *Agent) now() time.Time {
	if a.certTime != nil {
		return a.certTime()
	}
	return time.Now()
}

// checkConfig checks a config against the parts the agent runs on (what
// config.Parse cannot know): media binds only inside the lockdown
// policy's RTP range.
func (a *Agent) checkConfig(cfg *config.Config) error {
	if a.lock == nil {
		return nil
	}
	r := a.lock.Policy().RTP
	if r == nil || cfg.Media.PortMin < r.First || cfg.Media.PortMax > r.Last {
		return fmt.Errorf("media rtp ports %d-%d are outside the lockdown policy's rtp.ports (%s)",
			cfg.Media.PortMin, cfg.Media.PortMax, rtpRange(r))
	}
	return nil
}

// startTrial runs at Run's start: a document on trial gets its trial (or
// is reverted at once when it cannot have one).
func (a *Agent) startTrial(ctx context.Context, wg *sync.WaitGroup) {
	f := a.repos
	st, err := f.Configs.State()
	if err != nil || !st.Trial || st.Current == nil {
		if err != nil {
			a.log.Error("fleet configuration record", "error", err)
		}
		return
	}
	if f.Running != st.Current.Version {
		reason := "it does not apply to this image's config"
		if f.RunningError != "" {
			reason += ": " + f.RunningError
		}
		a.revertConfig(st, reason)
		return
	}
	st, err = f.Configs.Started()
	if err != nil {
		a.log.Error("fleet configuration record", "error", err)
		return
	}
	if st.Starts > maxTrialStarts {
		a.revertConfig(st, fmt.Sprintf("the agent started %d times under it without proving it", st.Starts-1))
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.watchTrial(ctx, st)
	}()
}

// watchTrial marks the document on trial good once every watched account
// registered, or reverts it when one has not within config_trial.
func (a *Agent) watchTrial(ctx context.Context, st fleetconfig.State) {
	var watched []*sip.Account
	for _, acct := range a.accounts {
		if slices.Contains(st.Watch, acct.Name()) {
			watched = append(watched, acct)
		}
	}
	trial := a.cfg.Provision.ConfigTrial
	deadline := time.Now().Add(trial)
	a.log.Info("fleet configuration on trial", "version", st.Current.Version, "accounts", st.Watch, "trial", trial)
	tick := time.NewTicker(trialPoll)
	defer tick.Stop()
	for {
		var missing *sip.Account
		for _, acct := range watched {
			if !acct.Registered() {
				missing = acct
				break
			}
		}
		if missing == nil {
			if _, err := a.repos.Configs.MarkGood(); err != nil {
				a.log.Error("mark the fleet configuration good", "error", err)
				return
			}
			a.log.Info("fleet configuration proven: marked good", "version", st.Current.Version)
			return
		}
		if !time.Now().Before(deadline) {
			reason := fmt.Sprintf("account %s did not register within %v", missing.Name(), trial)
			if e := missing.Status().LastError; e != "" {
				reason += ": " + e
			}
			a.revertConfig(st, reason)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// revertConfig puts the previous document back and restarts the agent on
// it.
func (a *Agent) revertConfig(st fleetconfig.State, reason string) {
	f := a.repos
	nst, err := f.Configs.Revert(reason, a.now())
	if err != nil {
		a.log.Error("revert the fleet configuration", "error", err)
		return
	}
	f.count("config.reverted")
	a.log.Error("fleet configuration reverted", "version", st.Current.Version, "back_to", nst.Version(), "reason", reason)
	a.record(events.Event{Kind: events.KindConfigRevert, Detail: events.Detail{
		"action": "reverted", "version": strconv.FormatUint(st.Current.Version, 10),
		"back_to": strconv.FormatUint(nst.Version(), 10), "reason": cutText(reason)}})
	a.reconfigure()
}

// firmwareWanted reports whether fw is firmware the phone should install
// now or later (it neither runs it nor has it installed for the next
// boot), and keeps its state for the status.
func (a *Agent) firmwareWanted(fw *uptane.Firmware) bool {
	f := a.repos
	if a.updater == nil || f.Firmware == nil {
		a.setFirmware(fw, control.FirmwareFailed, "this phone runs no updater")
		return false
	}
	st, err := a.updater.Status()
	if err != nil {
		a.setFirmware(fw, control.FirmwareFailed, "updater status: "+err.Error())
		return false
	}
	for _, s := range st.Slots {
		v := s.Version
		if s.Booted && v == "" {
			v = a.version
		}
		switch {
		case s.Booted && v == fw.Version:
			a.setFirmware(fw, control.FirmwareRunning, "slot "+s.Name)
			return false
		case !s.Booted && v == fw.Version && st.NextSlot == s.Name:
			a.setFirmware(fw, control.FirmwareInstalled, "slot "+s.Name+": the next boot runs it")
			return false
		}
	}
	return true
}

func (a *Agent) setFirmware(fw *uptane.Firmware, state, detail string) {
	f := a.repos
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.firmware
	if prev != nil && prev.Target == fw.Name && prev.State == state && prev.Detail == detail {
		return
	}
	f.firmware = &control.FirmwareStatus{Target: fw.Name, Version: fw.Version, State: state, Detail: cutText(detail), At: a.now()}
}

// installFirmware downloads and installs the assigned firmware when the
// phone wants it, it has not failed recently, and the maintenance window
// is open.
func (a *Agent) installFirmware(ctx context.Context) {
	f := a.repos
	f.mu.Lock()
	fw := f.assigned
	f.mu.Unlock()
	if fw == nil || !a.firmwareWanted(fw) {
		return
	}
	key := hex.EncodeToString(fw.SHA256[:])
	f.mu.Lock()
	fail, failed := f.fwFailures[key]
	f.mu.Unlock()
	if failed && time.Now().Before(fail.next) {
		return
	}
	if !a.cfg.Provision.InMaintenance(time.Now()) {
		a.setFirmware(fw, control.FirmwareWaiting, "outside the maintenance window")
		return
	}
	// The updater installs over the other slot only once the running one
	// proved itself; asking earlier would fail and wait for the retry.
	if st, err := a.updater.Status(); err == nil && !bootedGood(st) {
		a.setFirmware(fw, control.FirmwareWaiting, "until the running slot is marked good")
		return
	}
	a.setFirmware(fw, control.FirmwarePending, "downloading")
	a.log.Info("installing fleet firmware", "target", fw.Name, "version", fw.Version, "bytes", fw.Length)
	err := a.downloadInstall(ctx, fw)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		fail.n++
		d := min(firmwareRetry<<min(fail.n-1, 10), firmwareRetryMax)
		fail.next = time.Now().Add(d)
		f.mu.Lock()
		f.fwFailures[key] = fail
		f.mu.Unlock()
		f.count("firmware.install_failures")
		a.setFirmware(fw, control.FirmwareFailed, err.Error())
		a.log.Error("fleet firmware not installed", "target", fw.Name, "error", err, "retry_in", d)
		return
	}
	f.count("firmware.installed")
	f.mu.Lock()
	delete(f.fwFailures, key)
	f.mu.Unlock()
	a.firmwareWanted(fw) // the slot now holds it: status says installed
}

func (a *Agent) downloadInstall(ctx context.Context, fw *uptane.Firmware) error {
	path, err := a.repos.Firmware(ctx, *fw)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer func() {
		if err := os.Remove(path); err != nil {
			a.log.Warn("remove downloaded bundle", "path", path, "error", err)
		}
	}()
	a.setFirmware(fw, control.FirmwarePending, "installing")
	res, err := a.updater.Install(ctx, path, update.InstallOptions{})
	if errors.Is(err, update.ErrRollback) {
		a.record(events.Event{Kind: events.KindRollbackAttempt, Detail: events.Detail{"bundle": fw.Name, "reason": cutText(err.Error())}})
	}
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	a.log.Info("fleet firmware installed; the next boot runs it", "slot", res.Slot, "version", res.Version, "security_version", res.SecurityVersion)
	return nil
}

// provisioningStatus is the status's and the report's view.
func (a *Agent) provisioningStatus() *control.ProvisioningStatus {
	f := a.repos
	ps := &control.ProvisioningStatus{ConfigVersion: f.Running, RunningError: f.RunningError}
	f.mu.Lock()
	ps.PendingVersion = f.pending
	f.mu.Unlock()
	if st, err := f.Configs.State(); err == nil {
		ps.Trial = st.Trial && st.Version() == f.Running
		if ps.Trial {
			ps.TrialWatch = st.Watch
		}
		ps.GoodVersion = st.GoodVersion()
		if st.Reverted != nil {
			ps.Reverted = &control.DocumentOutcome{Version: st.Reverted.Version, Reason: st.Reverted.Reason, At: st.Reverted.At}
		}
		if st.Refused != nil {
			ps.Refused = &control.DocumentOutcome{Version: st.Refused.Version, Reason: st.Refused.Reason, At: st.Refused.At}
		}
	} else {
		ps.LastError = err.Error()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != nil {
		s := *f.status
		ps.Stale = s.Stale
		ps.StaleRepository, ps.StaleRole = staleRole(s)
		ps.DirectorTargets, ps.ImageTargets = s.Director.Targets, s.Image.Targets
		ps.SignedTime = s.Director.SignedTime
		ps.LastRefresh = s.Director.LastRefresh
	} else if f.client != nil {
		// Before the first refresh of this run: the stored set, as of now.
		s := f.client.Status()
		ps.Stale = s.Stale
		ps.StaleRepository, ps.StaleRole = staleRole(s)
		ps.DirectorTargets, ps.ImageTargets = s.Director.Targets, s.Image.Targets
	}
	if ps.LastError == "" {
		ps.LastError = f.lastErr
	}
	if f.firmware != nil {
		fw := *f.firmware
		ps.Firmware = &fw
	}
	return ps
}

// fleetCounters are the counters the report carries for the repositories.
func (a *Agent) fleetCounters() map[string]uint64 {
	f := a.repos
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.counters))
	for k, v := range f.counters {
		out[k] = v
	}
	return out
}

// bootedGood reports whether the booted slot is marked good.
func bootedGood(st *update.Status) bool {
	for _, s := range st.Slots {
		if s.Booted {
			return s.State == update.StateGood
		}
	}
	return false
}

// SealedOpener opens a secret the fleet sealed to this phone's TPM straight
// into the credential store (*credstore.Store has it).
type SealedOpener interface {
	OpenSealed(value, deviceID string, version uint64, name string) error
}

// openSealed opens every sealed password a document carries into the
// credential its account names, before the document runs: the plaintext
// goes from the TPM's shared secret into an encrypted record, nowhere
// else. A value sealed to another TPM, device, version or name, or
// older than the one in use, refuses the whole document.
func (a *Agent) openSealed(c *config.Config, deviceID string, version uint64) error {
	var opener SealedOpener
	for _, acct := range c.Accounts {
		if acct.PasswordSealed == "" {
			continue
		}
		if opener == nil {
			o, ok := a.creds.(SealedOpener)
			if !ok {
				return fmt.Errorf("account %s: a sealed password, and no TPM credential store to open it", acct.Name)
			}
			opener = o
		}
		if err := opener.OpenSealed(acct.PasswordSealed, deviceID, version, acct.PasswordCred); err != nil {
			return fmt.Errorf("account %s: %w", acct.Name, err)
		}
		a.log.Info("sealed password opened into the credential store", "account", acct.Name, "credential", acct.PasswordCred, "version", version)
	}
	return nil
}
