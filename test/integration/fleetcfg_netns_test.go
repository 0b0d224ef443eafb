package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/crypto/timefloor"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/test"
)

// docExpires is a fleet document that changes the account's registration
// lifetime: visible in the status as what the registrar granted.
func docExpires(d string) string {
	return "[[account]]\nname = \"alice\"\nexpires = \"" + d + "\"\n"
}

// grantedExpires is the first account's granted registration lifetime.
func grantedExpires(st *control.Status) int {
	if len(st.Accounts) == 0 {
		return 0
	}
	return st.Accounts[0].Granted
}

// TestFleetConfigApply: a document the director signs for this device
// reaches the phone at once by check-sync (the registrar's NOTIFY over the
// phone's flow), is merged over the image's config, runs on trial and is
// marked good once the account registers again; the phone registers with
// what the document says. Then what must change nothing does not: a
// document with an image-only key, one that does not parse, a tampered
// document, another device's metadata, a replayed timestamp, and a
// director naming firmware the image repository does not list.
func TestFleetConfigApply(t *testing.T) {
	u := newUptaneEnv(t)
	path := u.uptanePhone(t, "alice", "HP1-000010", "", "")
	p := u.start(t, path, "alice")
	if st := p.status(t); st.ConfigVersion != 0 || st.Stale != true && st.DirectorTargets != 0 {
		t.Logf("before any assignment: %+v", st)
	}

	u.assign(t, p.id, 1, docExpires("120s"), nil)
	start := time.Now()
	u.checkSync(t, "alice")
	st := p.waitStatus(t, 30*time.Second, "document v1 running and good", func(st *control.Status) bool {
		ps := st.Provisioning
		return ps.ConfigVersion == 1 && !ps.Trial && ps.GoodVersion == 1 && registered(st)
	})
	t.Logf("check-sync to document v1 running and proven: %v", time.Since(start).Round(time.Millisecond))
	if g := grantedExpires(st); g != 120 {
		t.Fatalf("granted expires under document v1 = %d, want 120 (the document's)", g)
	}
	if st.Provisioning.Stale || st.Provisioning.DirectorTargets < 1 {
		t.Fatalf("provisioning after v1 = %+v, want fresh metadata", st.Provisioning)
	}

	// Each refusal: the director publishes, the phone is told, and what
	// it runs stays v1.
	refused := func(name string, version uint64, doc, reason string) {
		t.Helper()
		u.assign(t, p.id, version, doc, nil)
		u.checkSync(t, "alice")
		st := p.waitStatus(t, 20*time.Second, name+" refused", func(st *control.Status) bool {
			r := st.Provisioning.Refused
			return r != nil && r.Version == version
		})
		if ps := st.Provisioning; ps.ConfigVersion != 1 || ps.GoodVersion != 1 || !strings.Contains(ps.Refused.Reason, reason) {
			t.Fatalf("%s: provisioning = %+v, want v1 running and the refusal naming %q", name, ps, reason)
		}
		if !p.hasEvent(t, "config.revert", `"refused"`) {
			t.Fatalf("%s: no config.revert event with action refused:\n%s", name, p.events(t))
		}
	}
	refused("image-only key", 2, "[tls]\nca_file = \"/tmp/evil-ca.pem\"\n", "tls")
	refused("document that does not parse", 3, "max_calls = = 2\n", "line 1")
	refused("sealed secret without its credential", 4, "[[account]]\nname = \"alice\"\npassword_sealed = \"hps1.x\"\n", "password_cred")

	// The rest are the metadata's, refused by agent/uptane before any
	// document is looked at; the director's check-sync still arrives.
	unchanged := func(name, wantErr string) {
		t.Helper()
		u.checkSync(t, "alice")
		st := p.waitStatus(t, 20*time.Second, name, func(st *control.Status) bool {
			return strings.Contains(st.Provisioning.LastError, wantErr)
		})
		if ps := st.Provisioning; ps.ConfigVersion != 1 || ps.GoodVersion != 1 {
			t.Fatalf("%s: provisioning = %+v, want v1 still running", name, ps)
		}
	}
	// Tampered: the served document is not the one the director signed.
	r := u.assign(t, p.id, 5, docExpires("180s"), nil)
	for name := range r.Files() {
		if strings.HasPrefix(name, "targets/") {
			tampered := []byte(strings.Replace(docExpires("180s"), "180", "900", 1))
			if err := os.WriteFile(u.devicePath(p.id, name), tampered, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	unchanged("tampered document", "does not match")
	old, err := os.ReadFile(u.devicePath(p.id, "timestamp.json")) // replayed below
	if err != nil {
		t.Fatal(err)
	}
	// Another device's metadata served as this device's (a director
	// server that mixes devices up): signed by the same director, with
	// versions above this device's so that only the device check stops it.
	var other *tufrepo.DeviceRepo
	for i := 0; i < 12; i++ {
		other = u.assign(t, "dev-other-device", uint64(i+1), docExpires("240s"), nil)
	}
	for name, data := range other.Files() {
		if err := os.WriteFile(u.devicePath(p.id, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unchanged("another device's metadata", "another device")
	// A replayed (older) timestamp: the phone has seen a newer one.
	u.assign(t, p.id, 6, docExpires("200s"), nil)
	u.checkSync(t, "alice")
	p.waitStatus(t, 20*time.Second, "document v6 applied", func(st *control.Status) bool {
		return st.Provisioning.ConfigVersion == 6 && st.Provisioning.GoodVersion == 6 && registered(st)
	})
	replayed := u.devices[p.id]
	if err := os.WriteFile(u.devicePath(p.id, "timestamp.json"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	unchanged6 := func(name, wantErr string) {
		t.Helper()
		u.checkSync(t, "alice")
		st := p.waitStatus(t, 20*time.Second, name, func(st *control.Status) bool {
			return strings.Contains(st.Provisioning.LastError, wantErr)
		})
		if ps := st.Provisioning; ps.ConfigVersion != 6 || ps.GoodVersion != 6 {
			t.Fatalf("%s: provisioning = %+v, want v6 still running", name, ps)
		}
	}
	unchanged6("replayed timestamp", "metadata refused")
	u.write(t, u.director, replayed)
	// Expired when served: signed by a director whose clock is two days
	// behind, so every role it signs expired before the phone sees it.
	past, err := tufrepo.OpenDirector(u.dirRepo.Dir(), u.dirOnline, tufrepo.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	u.assignWith(t, past, p.id, 7, docExpires("300s"), nil)
	unchanged6("expired metadata", "expired")
	// Mix-and-match: the director names firmware the image repository
	// does not list; nothing of the assignment is used, not even its
	// document.
	fake := tufrepo.Firmware{Name: "hardphone-9.9.raucb", Length: 4096, Compatible: testCompatible, Version: "9.9", SecurityVersion: 9}
	u.assign(t, p.id, 8, docExpires("300s"), &fake)
	unchanged6("mix-and-match", "disagree")
	if st := p.status(t); st.Stale {
		t.Fatalf("after the refusals: %+v, want fresh (the last good metadata is fresh)", st)
	}
	// The director's signed time raised the phone's time floor: the
	// latest time it has securely seen is the director's, not the
	// registrar certificate's.
	if err := p.proc.stop(t); err != nil {
		t.Logf("stop: %v", err)
	}
	db, err := bolt.Open(filepath.Join(filepath.Dir(path), "state", store.FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	floor, src, err := timefloor.Read(db)
	if err != nil || src != "director timestamp" || time.Since(floor) > time.Hour {
		t.Fatalf("time floor = %v from %q, %v; want the director's recent signed time", floor, src, err)
	}
}

// reported waits until hpfleet stored a check-in of the device whose
// provisioning satisfies cond (the phone checks in every 10 s here).
func (u *uptaneEnv) reported(t *testing.T, id, what string, cond func(*api.Provisioning) bool) *api.Report {
	t.Helper()
	var last *api.Report
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		d, err := u.admin.Device(context.Background(), id)
		if err == nil {
			for i := range d.Reports {
				r := &d.Reports[i].Report
				last = r
				if r.Provisioning != nil && cond(r.Provisioning) {
					return r
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no check-in reporting %s within 40s; last report %+v", what, last)
	return nil
}

// TestFleetConfigRevert: a document that breaks registration (the account
// that registered before it does not register within config_trial) is
// reverted by the phone itself: the previous document runs again, the
// account registers, the revert is an event, in the status and in the
// next check-in, and the reverted version is never applied again; a newer
// document is.
func TestFleetConfigRevert(t *testing.T) {
	u := newUptaneEnv(t)
	p := u.start(t, u.uptanePhone(t, "alice", "HP1-000011", "", ""), "alice")
	u.assign(t, p.id, 1, docExpires("120s"), nil)
	u.checkSync(t, "alice")
	p.waitStatus(t, 30*time.Second, "document v1 good", func(st *control.Status) bool {
		return st.Provisioning.GoodVersion == 1 && st.Provisioning.ConfigVersion == 1 && registered(st)
	})
	// v2 sends the account to a registrar that is not there.
	u.assign(t, p.id, 2, "[[account]]\nname = \"alice\"\nregistrar = \"127.0.0.1:9\"\n", nil)
	u.checkSync(t, "alice")
	p.waitStatus(t, 20*time.Second, "document v2 on trial", func(st *control.Status) bool {
		return st.Provisioning.ConfigVersion == 2 && st.Provisioning.Trial
	})
	st := p.waitStatus(t, 40*time.Second, "document v2 reverted, v1 running and registered", func(st *control.Status) bool {
		ps := st.Provisioning
		return ps.ConfigVersion == 1 && !ps.Trial && ps.Reverted != nil && ps.Reverted.Version == 2 && registered(st)
	})
	if r := st.Provisioning.Reverted.Reason; !strings.Contains(r, "alice did not register within 10s") {
		t.Fatalf("revert reason %q, want the account that did not register", r)
	}
	if g := grantedExpires(st); g != 120 {
		t.Fatalf("granted expires after the revert = %d, want v1's 120", g)
	}
	if !p.hasEvent(t, "config.revert", `"reverted"`, `"version":"2"`) {
		t.Fatalf("no config.revert event for v2:\n%s", p.events(t))
	}
	u.reported(t, p.id, "the revert", func(ps *api.Provisioning) bool { return ps.RevertedVersion == 2 && ps.ConfigVersion == 1 })
	// The director still names v2: told again, the phone refreshes and
	// stays on v1.
	told := time.Now()
	u.checkSync(t, "alice")
	st = p.waitStatus(t, 20*time.Second, "a refresh after the check-sync", func(st *control.Status) bool {
		return st.Provisioning.LastRefresh.After(told)
	})
	if ps := st.Provisioning; ps.ConfigVersion != 1 || ps.Trial || ps.DirectorTargets != 2 {
		t.Fatalf("after check-sync naming the reverted v2: %+v, want v1 running, no trial, director targets v2", ps)
	}
	// A newer document is applied.
	u.assign(t, p.id, 3, docExpires("150s"), nil)
	u.checkSync(t, "alice")
	st = p.waitStatus(t, 30*time.Second, "document v3 good", func(st *control.Status) bool {
		return st.Provisioning.GoodVersion == 3 && st.Provisioning.ConfigVersion == 3 && registered(st)
	})
	if g := grantedExpires(st); g != 150 {
		t.Fatalf("granted expires under v3 = %d, want 150", g)
	}
}

// TestFleetStaleMetadata: the director stops refreshing (a freeze, or an
// attacker replaying what it served last): once the director's timestamp
// expires the phone keeps its last good configuration, refuses the stale
// metadata and says "stale" in `hardphone status`, its events and its
// next check-in; a fresh timestamp ends it.
func TestFleetStaleMetadata(t *testing.T) {
	u := newUptaneEnv(t)
	p := u.start(t, u.uptanePhone(t, "alice", "HP1-000012", "", ""), "alice")
	u.assign(t, p.id, 1, docExpires("120s"), nil)
	u.checkSync(t, "alice")
	p.waitStatus(t, 30*time.Second, "document v1 good", func(st *control.Status) bool {
		return st.Provisioning.GoodVersion == 1 && registered(st)
	})
	// The last timestamp the director signs lives one minute, signed 55 s
	// ago: it expires 5 s from now, and nothing replaces it.
	roots, err := u.dirRepo.RootChain()
	if err != nil {
		t.Fatal(err)
	}
	signedAt := time.Now().Add(-55 * time.Second)
	short, err := tufrepo.NewDirector(roots, u.dirOnline, tufrepo.Lifetimes{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour,
		Snapshot: 7 * 24 * time.Hour, Timestamp: time.Minute}, tufrepo.WithClock(func() time.Time { return signedAt }))
	if err != nil {
		t.Fatal(err)
	}
	u.refreshTimestamp(t, short, p.id)
	u.checkSync(t, "alice")
	p.waitStatus(t, 20*time.Second, "the short-lived timestamp trusted", func(st *control.Status) bool {
		return !st.Provisioning.Stale && st.Provisioning.LastRefresh.After(signedAt.Add(55*time.Second))
	})
	expires := signedAt.Add(time.Minute)
	time.Sleep(time.Until(expires) + time.Second) // the freeze: real time passes the expiry
	u.checkSync(t, "alice")
	st := p.waitStatus(t, 20*time.Second, "stale", func(st *control.Status) bool { return st.Provisioning.Stale })
	if ps := st.Provisioning; ps.StaleRepository != "director" || ps.StaleRole != "timestamp" || ps.ConfigVersion != 1 || !registered(st) {
		t.Fatalf("frozen: %+v, want the director's timestamp stale, v1 still running and registered", ps)
	}
	out, err := exec.Command(hardphoneBinary(t), "status", "--socket", p.ctl.Path()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fleet metadata: stale (director timestamp metadata expired") {
		t.Fatalf("hardphone status: %v\n%s", err, out)
	}
	if !p.hasEvent(t, "provision.stale_metadata", `"director"`, `"timestamp"`) {
		t.Fatalf("no provision.stale_metadata event:\n%s", p.events(t))
	}
	u.reported(t, p.id, "stale", func(ps *api.Provisioning) bool {
		return ps.Stale && ps.StaleRole == "timestamp" && ps.ConfigVersion == 1
	})
	// The director signs again.
	u.refreshTimestamp(t, u.director, p.id)
	u.checkSync(t, "alice")
	p.waitStatus(t, 20*time.Second, "fresh again", func(st *control.Status) bool { return !st.Provisioning.Stale })
}

// firmwareRig writes a test rig's A/B slots (files) and boot environment,
// booted from A, and returns the [update] table for them.
func (u *uptaneEnv) firmwareRig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []string{"A", "B"} {
		if err := os.WriteFile(filepath.Join(dir, "slot"+s), make([]byte, 4<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	envFile := filepath.Join(dir, "ubootenv")
	if err := os.WriteFile(envFile, make([]byte, 0x8000), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := ubootenv.Open(ubootenv.Config{Size: 0x4000, Copies: []ubootenv.Copy{{Path: envFile}, {Path: envFile, Offset: 0x4000}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Init(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout.toml")
	if err := os.WriteFile(layout, []byte(fmt.Sprintf("compatible = %q\nbooted_slot = \"A\"\n[slots]\nA = %q\nB = %q\n[env]\npath = %q\nredundant_offset = 0x4000\n",
		testCompatible, filepath.Join(dir, "slotA"), filepath.Join(dir, "slotB"), envFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	if u.upki == nil {
		u.upki = test.NewUpdatePKI(t, filepath.Join(u.keyDir, "upki"))
	}
	return fmt.Sprintf("\n[update]\nlayout = %q\nkeyring = %q\nmark_good_after = \"1s\"\n", layout, u.upki.CA.CertFile)
}

// TestFleetFirmware: firmware the director assigns and the image
// repository lists alike waits for the maintenance window, then is
// downloaded from the (untrusted) image repository's HTTP server, checked
// against its signed length and hash as it streams, and installed by the
// updater into the other slot; the status and the next check-in say so.
func TestFleetFirmware(t *testing.T) {
	u := newUptaneEnv(t)
	update := u.firmwareRig(t)
	// A window that is not now: tomorrow's weekday only.
	tomorrow := [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}[(int(time.Now().Weekday())+1)%7]
	closed := fmt.Sprintf("maintenance = [\"%s 00:00-24:00\"]\n", tomorrow)
	path := u.uptanePhone(t, "alice", "HP1-000013", closed, update)
	p := u.start(t, path, "alice")
	p.waitStatus(t, 20*time.Second, "the booted slot marked good", func(st *control.Status) bool { return registered(st) })
	waitMarkedGood(t, p.ctl)
	fw := u.addBundle(t, "2.0", 2)
	u.assign(t, p.id, 1, docExpires("120s"), &fw)
	u.checkSync(t, "alice")
	st := p.waitStatus(t, 30*time.Second, "firmware waiting for the window", func(st *control.Status) bool {
		f := st.Provisioning.Firmware
		return f != nil && f.State == control.FirmwareWaiting && st.Provisioning.ConfigVersion == 1
	})
	if f := st.Provisioning.Firmware; f.Version != "2.0" || f.Target != "hardphone-2.0.raucb" {
		t.Fatalf("firmware status %+v, want hardphone-2.0.raucb version 2.0", f)
	}
	us, err := p.ctl.UpdateStatus(context.Background())
	if err != nil || us.NextSlot != "A" {
		t.Fatalf("update status outside the window = %+v, %v; want nothing installed", us, err)
	}
	// The same phone with its window open (the image's config changed,
	// as a firmware update would change it).
	if err := p.proc.stop(t); err != nil {
		t.Logf("stop: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), closed, "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p = u.start(t, path, "alice")
	st = p.waitStatus(t, 60*time.Second, "firmware installed", func(st *control.Status) bool {
		f := st.Provisioning.Firmware
		return f != nil && (f.State == control.FirmwareInstalled || f.State == control.FirmwareFailed)
	})
	if f := st.Provisioning.Firmware; f.State != control.FirmwareInstalled {
		t.Fatalf("firmware %+v, want installed", f)
	}
	us, err = p.ctl.UpdateStatus(context.Background())
	if err != nil || us.NextSlot != "B" {
		t.Fatalf("update status after the install = %+v, %v; want B next", us, err)
	}
	for _, s := range us.Slots {
		if s.Name == "B" && (s.Version != "2.0" || s.SecurityVersion != 2) {
			t.Fatalf("slot B = %+v, want bundle 2.0, security version 2", s)
		}
	}
	r := u.reported(t, p.id, "the config", func(ps *api.Provisioning) bool { return ps.ConfigVersion == 1 })
	if r.Counters["firmware.installed"] < 1 {
		t.Fatalf("check-in counters %v, want firmware.installed", r.Counters)
	}
	var slotB bool
	for _, s := range r.Slots {
		slotB = slotB || s.Name == "B" && s.Version == "2.0"
	}
	if !slotB {
		t.Fatalf("check-in slots %+v, want B with 2.0", r.Slots)
	}
}

// waitMarkedGood waits until the agent marked its booted slot good: the
// updater refuses to install over a slot still on trial.
func waitMarkedGood(t *testing.T, c *control.Client) {
	t.Helper()
	waitFor(t, 30*time.Second, func() bool {
		us, err := c.UpdateStatus(context.Background())
		return err == nil && us.BootMarkedGood
	})
}
