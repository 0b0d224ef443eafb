package qemu

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/registrar"
	"github.com/hardphone/hardphone/test"
)

// The guest's view of the registrar and of the image repository (QEMU
// guest forwards the board's lockdown policy allows).
const (
	guestRegistrar = "10.0.2.100"
	guestImageRepo = "http://10.0.2.102/image/public/"
)

// TestFleetDirector: a zero-touch phone whose image pins the fleet's two
// repositories (the vendor's image repository and hpfleet's director)
// enrols, registers with its factory password and is marked good. Then
// hpfleet's director gives it (a) a configuration document that changes
// its account (registration lifetime 120 s) with a SIP password hpfleet
// generates, seals to the phone's TPM and writes to the registrar's
// subscriber table: the phone runs it and registers with it; and (b) a
// firmware assignment, a signed bundle the image repository (nginx on the
// host, reached through its own guest forward) lists: the phone downloads
// it, installs it into slot B, and PID 1 reboots into B, which registers
// and marks it good; hpfleet's inventory shows the new version.
func TestFleetDirector(t *testing.T) {
	requireFull(t)
	f := getFixture(t)
	dir := t.TempDir()
	ctx := context.Background()

	// The registrar: Kamailio authenticating from PostgreSQL, whose
	// subscriber table holds the factory password until the fleet writes
	// the one it generates.
	pg := test.StartPostgres(t, test.PostgresTCP())
	regDSN := pg.NewDatabase(t)
	test.KamailioAuthSchema(t, regDSN)
	subs, err := registrar.OpenSubscribers(ctx, regDSN)
	if err != nil {
		t.Fatal(err)
	}
	h, err := registrar.ComputeHashes(registrar.AlgSHA256, sipUser, guestRegistrar, []byte(f.password))
	if err != nil {
		t.Fatal(err)
	}
	if err := subs.Set(ctx, sipUser, guestRegistrar, h, false); err != nil {
		t.Fatal(err)
	}
	subs.Close()
	dsnFile := filepath.Join(dir, "registrar-dsn")
	if err := os.WriteFile(dsnFile, []byte(regDSN), 0o600); err != nil {
		t.Fatal(err)
	}

	// The two repositories, and the firmware: a slot image of version 2
	// (security version 2) whose generated config follows the same
	// fleet, signed by the vendor and listed by the image repository.
	rp := newRepos(t, f, dir)
	fl := newFleet(t, dir)
	f.fleetImage(t, fl, rp, filepath.Join(dir, "v2"), "--slot-only", "--version", "2", "--security-version", "2")
	const target = "hardphone-2.raucb"
	rp.add(t, f, filepath.Join(dir, "v2", "update.raucb"), target)

	k := test.StartKamailio(t, test.KamailioPKI(f.pki), test.KamailioCert(f.regCert, f.regKey),
		test.KamailioCA(filepath.Join(fl.pki, ca.DeviceCACertFile)), test.KamailioDeviceUsers(),
		test.KamailioPostgresAuth(pg.URL(t, regDSN)), test.KamailioRPC(), test.KamailioDigestAlgorithm("SHA-256"))
	fl.start(t, dir, append(rp.hpfleetArgs(),
		"--registrar-db", "@"+dsnFile, "--registrar-domain", guestRegistrar, "--registrar-rpc", k.RPCURL(),
		"--password-rotation", "0")...)
	admin := fl.admin

	// The factory's phone, and its image: version 1, pinning both roots.
	vm, id, start := f.bootFleetPhone(t, dir, fl, rp, "QEMU-000002")
	t.Logf("enrolled as %s %v after QEMU started", id, time.Since(start).Round(time.Millisecond))
	k.SetDeviceUser(t, id, sipUser)
	wantField(t, vm.WaitMarker(t, "registered", bootTimeout), "credentials", "tpm")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	if d, err := admin.Device(ctx, id); err != nil || !d.Device.SealingKey {
		t.Fatalf("device %s: %+v, %v; want a TPM sealing key proven at enrolment", id, d, err)
	}

	// (a) The configuration document: the account asks for 120 s
	// registrations; hpfleet generates its password, seals it to this
	// phone's TPM and writes the registrar's row.
	doc := fmt.Sprintf("[[account]]\nname = %q\nuser = %q\nregistrar = \"%s:5061\"\ndomain = %q\npassword_cred = \"sip/%s\"\nexpires = \"120s\"\n",
		sipUser, sipUser, guestRegistrar, guestRegistrar, sipUser)
	assigned := time.Now()
	res, err := admin.SetConfig(ctx, api.ScopeDevice, id, []byte(doc))
	if err != nil {
		t.Fatalf("config set: %v", err)
	}
	t.Logf("config set: %+v", res)
	var reg test.Registration
	waitFleet(t, fl, "a registration under the document (expires <= 120)", func() bool {
		for _, r := range k.Registrations(t) {
			if (r.AoR == sipUser || strings.HasPrefix(r.AoR, sipUser+"@")) && r.Expires <= 120 {
				reg = r
				return true
			}
		}
		return false
	})
	running := time.Since(assigned)
	var ps *api.ProvisionStatus
	waitFleet(t, fl, "the phone's check-in confirming the document (the previous password dropped)", func() bool {
		ps, err = admin.Provision(ctx, id)
		return err == nil && len(ps.Accounts) == 1 && ps.Accounts[0].Generation >= 1 && !ps.Accounts[0].PreviousValid &&
			ps.ReportedConfigVersion >= ps.Accounts[0].SealedVersion
	})
	confirmed := time.Since(assigned)
	t.Logf("config assigned -> registered under it (expires %d): %v; -> confirmed by check-in: %v",
		reg.Expires, running.Round(time.Millisecond), confirmed.Round(time.Millisecond))
	if b, err := os.ReadFile(k.LogPath()); err != nil || strings.Contains(string(b), "with the previous password") {
		t.Fatalf("Kamailio log (%v): the phone registered with the factory password after the document:\n%s", err, b)
	}

	// (b) The firmware assignment.
	assigned = time.Now()
	if _, err := admin.AssignFirmware(ctx, api.ScopeDevice, id, target); err != nil {
		t.Fatalf("firmware assign: %v", err)
	}
	// The updater's own word that B is written and next in the boot
	// order; then PID 1 reboots into it by itself (no call is up).
	vm.WaitLine(t, `msg="boot order switched; reboot to try the new slot"`, installTimeout)
	written := time.Since(assigned)
	wantField(t, vm.WaitMarker(t, "reboot", bootTimeout), "reason", "fleet-update")
	t.Logf("firmware assigned -> B written and next: %v; -> PID 1 reboots into it: %v",
		written.Round(time.Millisecond), time.Since(assigned).Round(time.Millisecond))
	// The bundle came from the image repository through the guest's
	// second forward (nginx's access log: "METHOD URI STATUS BYTES").
	if b, err := os.ReadFile(rp.ngx.AccessLog); err != nil || !strings.Contains(string(b), "."+target+" 200 ") {
		t.Fatalf("nginx access log (%v): no download of %s:\n%s", err, target, b)
	}
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "B")
	wantField(t, vm.WaitMarker(t, "registered", bootTimeout), "slot", "B")
	good := vm.WaitMarker(t, "marked-good", bootTimeout)
	wantField(t, good, "slot", "B")
	wantField(t, good, "version", "2")
	markedGood := time.Since(assigned)
	t.Logf("timeline:\n%s", vm.Timeline())
	var r api.Report
	waitFleet(t, fl, "the inventory showing firmware 2 marked good in B", func() bool {
		d, err := admin.Device(ctx, id)
		if err != nil || len(d.Reports) == 0 {
			return false
		}
		r = d.Reports[0].Report
		return r.Firmware.Version == "2" && r.Boot.Slot == "B" && r.Boot.MarkedGood
	})
	inInventory := time.Since(assigned)
	if r.Firmware.SecurityVersion != 2 || r.Provisioning == nil || r.Provisioning.ConfigVersion != ps.ReportedConfigVersion {
		t.Errorf("check-in after the update = %+v, provisioning %+v; want security version 2 and the document still running", r, r.Provisioning)
	}
	vm.Kill(t)
	t.Logf("firmware assigned -> B written %v -> marked good in B %v (PID 1's reboot included) -> in the inventory %v",
		written.Round(time.Millisecond), markedGood.Round(time.Millisecond), inInventory.Round(time.Millisecond))
	t.Logf("scenario fleet director: %v", time.Since(start).Round(time.Millisecond))
}

// repos are the fleet's two TUF repositories, made with hpctl repo: the
// vendor's image repository served by nginx (its keys stay outside the
// document root), and the director's, whose root key stays offline while
// hpfleet holds the online keys.
type repos struct {
	ngx                                 *test.StaticNginx
	image, imageRoot, director, dirRoot string
	imgTargets, imgSnap, imgTS          string
	dirTargets, dirSnap, dirTS          string
}

func newRepos(t *testing.T, f *fixture, dir string) *repos {
	t.Helper()
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	key := func(name string) string {
		p := filepath.Join(keys, name+".pem")
		f.hpctlRun(t, "repo", "keygen", p)
		return p
	}
	r := &repos{ngx: test.StartStaticNginx(t)}
	r.image = filepath.Join(r.ngx.Root, "image")
	r.imgTargets, r.imgSnap, r.imgTS = key("image-targets"), key("image-snapshot"), key("image-timestamp")
	f.hpctlRun(t, "repo", "init", r.image, "--root-keys", key("image-root"), "--targets-key", r.imgTargets,
		"--snapshot-key", r.imgSnap, "--timestamp-key", r.imgTS)
	r.director = filepath.Join(dir, "director-root")
	r.dirTargets, r.dirSnap, r.dirTS = key("director-targets"), key("director-snapshot"), key("director-timestamp")
	f.hpctlRun(t, "repo", "init", r.director, "--root-keys", key("director-root"), "--targets-key", r.dirTargets,
		"--snapshot-key", r.dirSnap, "--timestamp-key", r.dirTS)
	r.imageRoot = filepath.Join(r.image, "public", "1.root.json")
	r.dirRoot = filepath.Join(r.director, "public", "1.root.json")
	return r
}

// add lists a signed bundle in the image repository under name.
func (r *repos) add(t *testing.T, f *fixture, bundle, name string) {
	t.Helper()
	f.hpctlRun(t, "repo", "add", r.image, bundle, "--keyring", f.upki.CA.CertFile,
		"--key", r.imgTargets, "--name", name, "--snapshot-key", r.imgSnap, "--timestamp-key", r.imgTS)
}

// hpfleetArgs run hpfleet's director over the repositories.
func (r *repos) hpfleetArgs() []string {
	return []string{"--director", r.director, "--director-targets-key", r.dirTargets,
		"--director-snapshot-key", r.dirSnap, "--director-timestamp-key", r.dirTS,
		"--image-url", r.ngx.URL + "/image/public/", "--image-root", r.imageRoot, "--director-interval", "1s"}
}

// fleetImage builds the qemu-arm64 image of a fleet phone (extra adds to
// hpctl image build's flags) that pins both repositories' roots and
// follows hpfleet at 10.0.2.101:8443.
func (f *fixture) fleetImage(t *testing.T, fl *fleet, r *repos, out string, extra ...string) {
	t.Helper()
	f.hpctlRun(t, append([]string{"image", "build", "--board", "qemu-arm64", "--hardphone", f.phone, "-o", out, "--offline",
		"--cache", filepath.Join(f.root, ".cache", "hpctl"), "--ca", f.pki.CAFile,
		"--keyring", f.upki.CA.CertFile, "--signer-cert", f.upki.Leaf.CertFile, "--signer-key", f.upki.Leaf.KeyFile,
		"--user", sipUser, "--fleet", "https://10.0.2.101:8443", "--fleet-server-name", fleetName,
		"--fleet-ca", filepath.Join(fl.pki, ca.ServerCACertFile), "--fleet-device-ca", filepath.Join(fl.pki, ca.DeviceCACertFile),
		"--image-root", r.imageRoot, "--director-root", r.dirRoot, "--image-repo", guestImageRepo}, extra...)...)
}

// bootFleetPhone makes a zero-touch phone of group lab from the factory
// (serial), builds its image (version 1, pinning both repositories),
// boots it and waits for its enrolment: the VM, the device ID hpfleet
// gave it and when QEMU started.
func (f *fixture) bootFleetPhone(t *testing.T, dir string, fl *fleet, rp *repos, serial string) (*test.QEMU, string, time.Time) {
	t.Helper()
	tpmDir := f.factoryTPM(t, dir, fl, serial)
	base := filepath.Join(dir, "image")
	f.fleetImage(t, fl, rp, base, "--version", "1", "--security-version", "1", "--data", filepath.Join(dir, "data"))
	start := time.Now()
	vm := test.StartQEMU(t, test.QEMUConfig{Disk: filepath.Join(base, "disk.img"), Flash: filepath.Join(base, "flash1.img"),
		TPMState: tpmDir, SIPPort: 5061, FleetPort: srvPort(t, fl.srv), ImageRepoPort: nginxPort(t, rp.ngx), Dir: dir})
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "A")
	var id string
	waitFleet(t, fl, "the phone "+serial+" enrolled", func() bool {
		page, err := fl.admin.Inventory(context.Background(), "", 10)
		for _, d := range page.Devices {
			if err == nil && d.Serial == serial {
				id = d.ID
			}
		}
		return id != ""
	})
	return vm, id, start
}

// waitFleet polls cond until it holds, failing after installTimeout with
// hpfleet's log.
func waitFleet(t *testing.T, fl *fleet, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(installTimeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\n--- hpfleet ---\n%s", what, installTimeout, fl.srv.LogTail())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// nginxPort is the port nginx listens on, on 127.0.0.1.
func nginxPort(t *testing.T, n *test.StaticNginx) int {
	t.Helper()
	u, err := url.Parse(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("nginx URL %s: %v", n.URL, err)
	}
	return p
}
