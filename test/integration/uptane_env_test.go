package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

// uptaneEnv is the fleet of fleetEnv (hpfleet for enrolment and check-ins,
// Kamailio trusting the fleet's device CA) plus the fleet's two
// repositories made with fleet/tufrepo: the vendor's image repository
// served as static files by nginx over plain HTTP (the transport is
// untrusted), and the director's per-device repositories served by nginx
// over mutual TLS with the fleet server's certificate, each device's only
// to that device's certificate (test/nginx_mtls.go), as hpfleet serves
// them.
type uptaneEnv struct {
	*fleetEnv
	keyDir string

	imgNginx  *test.StaticNginx
	image     *tufrepo.Repo
	imgTgt    []*tufrepo.Key
	imgSnap   []*tufrepo.Key
	imgTS     []*tufrepo.Key
	dirRepo   *tufrepo.Repo
	dirOnline tufrepo.OnlineKeys
	director  *tufrepo.Director
	dirNginx  *test.DirectorNginx
	upki      *test.UpdatePKI

	mu      sync.Mutex
	devices map[string]*tufrepo.DeviceRepo
}

// testCompatible is the compatible of the test rig's slots and bundles.
const testCompatible = "hardphone-test"

func newUptaneEnv(t testing.TB) *uptaneEnv {
	t.Helper()
	f := newFleetEnv(t)
	u := &uptaneEnv{fleetEnv: f, keyDir: t.TempDir(), devices: map[string]*tufrepo.DeviceRepo{}}
	keys := func(prefix string, n int) []*tufrepo.Key {
		var ks []*tufrepo.Key
		for i := 0; i < n; i++ {
			k, err := tufrepo.GenerateKey(filepath.Join(u.keyDir, fmt.Sprintf("%s-%d.pem", prefix, i)), tufrepo.AlgECDSAP256)
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			ks = append(ks, k)
		}
		return ks
	}
	u.imgNginx = test.StartStaticNginx(t)
	imgRoot := keys("image-root", 1)
	u.imgTgt, u.imgSnap, u.imgTS = keys("image-targets", 1), keys("image-snapshot", 1), keys("image-timestamp", 1)
	var err error
	u.image, err = tufrepo.Init(filepath.Join(u.imgNginx.Root, "image"), tufrepo.InitParams{
		Root: tufrepo.RoleKeys{Keys: imgRoot, Threshold: 1}, Targets: tufrepo.RoleKeys{Keys: u.imgTgt, Threshold: 1},
		Snapshot: tufrepo.RoleKeys{Keys: u.imgSnap, Threshold: 1}, Timestamp: tufrepo.RoleKeys{Keys: u.imgTS, Threshold: 1},
	})
	if err != nil {
		t.Fatalf("image Init: %v", err)
	}
	u.publishImage(t)
	dirRoot := keys("director-root", 1)
	u.dirOnline = tufrepo.OnlineKeys{Targets: keys("director-targets", 1), Snapshot: keys("director-snapshot", 1), Timestamp: keys("director-timestamp", 1)}
	u.dirRepo, err = tufrepo.Init(filepath.Join(u.keyDir, "director-root"), tufrepo.InitParams{
		Root: tufrepo.RoleKeys{Keys: dirRoot, Threshold: 1}, Targets: tufrepo.RoleKeys{Keys: u.dirOnline.Targets, Threshold: 1},
		Snapshot: tufrepo.RoleKeys{Keys: u.dirOnline.Snapshot, Threshold: 1}, Timestamp: tufrepo.RoleKeys{Keys: u.dirOnline.Timestamp, Threshold: 1},
	})
	if err != nil {
		t.Fatalf("director Init: %v", err)
	}
	if _, err := u.dirRepo.Publish(tufrepo.SigningKeys{Snapshot: u.dirOnline.Snapshot, Timestamp: u.dirOnline.Timestamp}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}
	if u.director, err = tufrepo.OpenDirector(u.dirRepo.Dir(), u.dirOnline); err != nil {
		t.Fatalf("OpenDirector: %v", err)
	}
	u.dirNginx = test.StartDirectorNginx(t, test.DirectorNginxConfig{CertFile: filepath.Join(f.pki, ca.ServerCertFile),
		KeyFile: filepath.Join(f.pki, ca.ServerKeyFile), ClientCAFile: filepath.Join(f.pki, ca.DeviceCACertFile)})
	return u
}

func (u *uptaneEnv) publishImage(t testing.TB) {
	t.Helper()
	if _, err := u.image.Publish(tufrepo.SigningKeys{Snapshot: u.imgSnap, Timestamp: u.imgTS}); err != nil {
		t.Fatalf("image Publish: %v", err)
	}
}

// addBundle makes a signed bundle of version and adds it to the image
// repository.
func (u *uptaneEnv) addBundle(t testing.TB, version string, secver uint64) tufrepo.Firmware {
	t.Helper()
	if u.upki == nil {
		u.upki = test.NewUpdatePKI(t, filepath.Join(u.keyDir, "upki"))
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "rootfs.img")
	b := make([]byte, 256<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hardphone-"+version+".raucb")
	m := &bundle.Manifest{Compatible: testCompatible, Version: version, SecurityVersion: secver, HasSecurityVersion: true,
		Images: []bundle.Image{{SlotClass: "rootfs", Filename: "rootfs.img"}}}
	if err := bundle.Create(context.Background(), out, m, map[string]string{"rootfs.img": img}, bundle.Signer{Cert: u.upki.Leaf.Cert, Key: u.upki.Leaf.Key}); err != nil {
		t.Fatalf("bundle.Create: %v", err)
	}
	kr, err := bundle.LoadKeyring(u.upki.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := u.image.AddBundle(out, "", kr, u.imgTgt)
	if err != nil {
		t.Fatalf("AddBundle: %v", err)
	}
	u.publishImage(t)
	return fw
}

// assign publishes a device's director repository: the configuration
// document (version, data; nil data for none) and firmware (nil for none).
func (u *uptaneEnv) assign(t testing.TB, dev string, version uint64, doc string, fw *tufrepo.Firmware) *tufrepo.DeviceRepo {
	t.Helper()
	return u.assignWith(t, u.director, dev, version, doc, fw)
}

func (u *uptaneEnv) assignWith(t testing.TB, d *tufrepo.Director, dev string, version uint64, doc string, fw *tufrepo.Firmware) *tufrepo.DeviceRepo {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	a := tufrepo.Assignment{Firmware: fw}
	if doc != "" {
		a.Config = &tufrepo.ConfigDoc{Version: version, Data: []byte(doc)}
	}
	r, err := d.Publish(u.devices[dev], dev, a)
	if err != nil {
		t.Fatalf("director Publish(%s): %v", dev, err)
	}
	u.write(t, d, r)
	return r
}

func (u *uptaneEnv) write(t testing.TB, d *tufrepo.Director, r *tufrepo.DeviceRepo) {
	t.Helper()
	if err := tufrepo.WriteDeviceRepo(filepath.Join(u.dirNginx.Root, "director"), d, r); err != nil {
		t.Fatalf("WriteDeviceRepo: %v", err)
	}
	u.devices[r.DeviceID] = r
}

// refreshTimestamp re-signs a device's timestamp with d.
func (u *uptaneEnv) refreshTimestamp(t testing.TB, d *tufrepo.Director, dev string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	r, err := d.RefreshTimestamp(u.devices[dev])
	if err != nil {
		t.Fatalf("RefreshTimestamp: %v", err)
	}
	u.write(t, d, r)
}

// devicePath is a served file of a device's director repository.
func (u *uptaneEnv) devicePath(dev, name string) string {
	return filepath.Join(u.dirNginx.Root, "director", dev, filepath.FromSlash(name))
}

// uptanePhone writes a fleet phone's config (fleetPhone) that follows
// the two repositories, with extra lines appended to its [provision]
// table and more (e.g. an [update] table) after it.
func (u *uptaneEnv) uptanePhone(t testing.TB, user, serial, provision, after string) string {
	t.Helper()
	path := u.fleetPhone(t, user, serial)
	dir := filepath.Dir(path)
	copyRoot := func(from, name string) string {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	imgRoot := copyRoot(filepath.Join(u.image.PublicDir(), "1.root.json"), "image-root.json")
	dirRoot := copyRoot(filepath.Join(u.dirRepo.PublicDir(), "1.root.json"), "director-root.json")
	lines := fmt.Sprintf("image_root = %q\ndirector_root = %q\nimage_repo = %q\ndirector_url = %q\nconfig_trial = \"10s\"\n%s",
		imgRoot, dirRoot, u.imgNginx.URL+"/image/public/", u.dirNginx.URL+"/director/", provision)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(lines + after); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// runningPhone is a `hardphone run` process of a fleet phone, enrolled and
// registered.
type runningPhone struct {
	proc   *agentProcess
	path   string
	id     string
	user   string
	ctl    *control.Client
	stdout string
}

// start runs the phone's agent, waits for its enrolment, binds its
// device to its SIP user at the registrar and waits for its registration.
func (u *uptaneEnv) start(t testing.TB, path, user string) *runningPhone {
	t.Helper()
	p := &runningPhone{proc: startAgentProcess(t, "--config", path), path: path, user: user,
		ctl: control.NewClient(filepath.Join(filepath.Dir(path), "ctl.sock"))}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hardphone run log (tail, no debug) ---\n%s", tail(withoutDebug(readFile(p.proc.log)), 60))
		}
	})
	p.id = waitEnrolled(t, p.ctl.Path())
	u.k.SetDeviceUser(t, p.id, user)
	u.k.WaitRegistered(t, user, 30*time.Second)
	return p
}

// status is the phone's provisioning status (fails the test without one).
func (p *runningPhone) status(t testing.TB) *control.ProvisioningStatus {
	t.Helper()
	st, err := p.ctl.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Provisioning == nil {
		t.Fatalf("status has no provisioning: %+v", st)
	}
	return st.Provisioning
}

// waitStatus polls the status until cond holds; the agent may be between
// two runs (a configuration change), when the socket does not answer.
func (p *runningPhone) waitStatus(t testing.TB, timeout time.Duration, what string, cond func(*control.Status) bool) *control.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *control.Status
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := p.ctl.Status(ctx)
		cancel()
		if err == nil {
			last = st
			if st.Provisioning != nil && cond(st) {
				return st
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	t.Fatalf("%s: not within %v; last status:\n%s", what, timeout, b)
	return nil
}

// registered reports whether every account of st is registered.
func registered(st *control.Status) bool {
	for _, a := range st.Accounts {
		if !a.Registered {
			return false
		}
	}
	return len(st.Accounts) > 0
}

// checkSync has Kamailio send NOTIFY with Event: check-sync to each of
// the user's registrations through the connection it registered over, as
// the fleet's registrar client does (tm.t_uac_*: the next hop is where
// the REGISTER came from, so Kamailio reuses the phone's TLS connection
// and never dials the phone), and fails the test unless one answers 200.
// Kamailio 5.6's tm RPC refuses a request without Content-Type ("400 -
// Content-Type missing"), body or not.
func (u *uptaneEnv) checkSync(t testing.TB, user string) {
	t.Helper()
	u.k.WaitRegistered(t, user, 10*time.Second)
	domain := u.k.IP()
	var answers []string
	for _, reg := range u.k.Registrations(t) {
		if reg.AoR != user && !strings.HasPrefix(reg.AoR, user+"@") {
			continue
		}
		next, sock := reg.Received, reg.Socket
		if next == "" {
			next = "."
		}
		if sock == "" {
			sock = "."
		}
		hdrs := "From: <sip:hpfleet@" + domain + ">;tag=" + randHex(8) + "\r\nTo: <sip:" + user + "@" + domain + ">\r\n" +
			"Event: check-sync\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: text/plain\r\n"
		out := u.k.Kamcmd(t, "tm.t_uac_wait_block", "NOTIFY", reg.Contact, next, sock, hdrs)
		if strings.Contains(out, "code: 200") {
			return
		}
		answers = append(answers, reg.Contact+": "+strings.TrimSpace(out))
	}
	t.Fatalf("check-sync to %s: no registration answered 200: %v", user, answers)
}

// events lists the phone's journal as JSON lines.
func (p *runningPhone) events(t testing.TB) string {
	t.Helper()
	recs, err := p.ctl.EventsList(context.Background(), 0, 1000)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	var b strings.Builder
	for _, r := range recs {
		b.Write(r)
		b.WriteByte('\n')
	}
	return b.String()
}

// hasEvent reports whether the journal has an event of kind whose JSON
// contains every one of subs.
func (p *runningPhone) hasEvent(t testing.TB, kind string, subs ...string) bool {
	t.Helper()
	for _, line := range strings.Split(p.events(t), "\n") {
		if !strings.Contains(line, `"`+kind+`"`) {
			continue
		}
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// withoutDebug drops the debug lines of a JSON log.
func withoutDebug(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"level":"DEBUG"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
