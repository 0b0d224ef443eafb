package qemu

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// fleetName is the name hpfleet's certificate carries; the image pins it
// and reaches the server at 10.0.2.101:8443 (a guest forward).
const fleetName = "fleet.test"

// TestFirstBootZeroTouch: a phone fresh from the factory, whose TPM holds
// nothing but its maker's EK certificate (plus the user's sealed SIP
// password and the floor), boots, enrols with hpfleet on the host with no
// manual step (attested by its EK, on the vendor's allow-list), registers
// with the certificate the fleet issued, is marked good, and checks in:
// the fleet's inventory shows its firmware and slots.
func TestFirstBootZeroTouch(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	fl := startFleet(t, dir)
	tpmDir := f.factoryTPM(t, dir, fl, "QEMU-000001")
	pki := fl.pki
	srv, admin := fl.srv, fl.admin
	ctx := context.Background()

	// The image pins the fleet; its data partition holds the factory's
	// state file.
	base := filepath.Join(dir, "image")
	f.hpctlRun(t, "image", "build", "--board", "qemu-arm64", "--hardphone", f.phone, "-o", base, "--offline",
		"--cache", filepath.Join(f.root, ".cache", "hpctl"), "--ca", f.pki.CAFile,
		"--keyring", f.upki.CA.CertFile, "--signer-cert", f.upki.Leaf.CertFile, "--signer-key", f.upki.Leaf.KeyFile,
		"--user", sipUser, "--version", "1", "--security-version", "1", "--data", filepath.Join(dir, "data"),
		"--fleet", "https://10.0.2.101:8443", "--fleet-server-name", fleetName,
		"--fleet-ca", filepath.Join(pki, ca.ServerCACertFile), "--fleet-device-ca", filepath.Join(pki, ca.DeviceCACertFile))
	k := test.StartKamailio(t, test.KamailioPKI(f.pki), test.KamailioCert(f.regCert, f.regKey),
		test.KamailioCA(filepath.Join(pki, ca.DeviceCACertFile)), test.KamailioDeviceUsers(),
		test.KamailioUsers(map[string]string{sipUser: f.password}), test.KamailioDigestAlgorithm("SHA-256"))
	start := time.Now()
	vm := test.StartQEMU(t, test.QEMUConfig{Disk: filepath.Join(base, "disk.img"), Flash: filepath.Join(base, "flash1.img"),
		TPMState: tpmDir, SIPPort: 5061, FleetPort: srvPort(t, srv), Dir: dir})
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "A")

	// The phone enrols by itself; the registrar's provisioning then binds
	// the new device to its user.
	var dev api.Device
	deadline := time.Now().Add(bootTimeout)
	for {
		page, err := admin.Inventory(ctx, "", 10)
		if err == nil && len(page.Devices) == 1 {
			dev = page.Devices[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the phone never enrolled: %+v, %v\n--- hpfleet ---\n%s", page, err, srv.LogTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("enrolled as %s %v after QEMU started", dev.ID, time.Since(start).Round(time.Millisecond))
	if dev.Serial != "QEMU-000001" {
		t.Errorf("enrolled device %+v, want serial QEMU-000001", dev)
	}
	k.SetDeviceUser(t, dev.ID, sipUser)
	reg := vm.WaitMarker(t, "registered", bootTimeout)
	wantField(t, reg, "credentials", "tpm")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	var d *api.DeviceDetail
	var err error
	for deadline := time.Now().Add(bootTimeout); ; {
		d, err = admin.Device(ctx, dev.ID)
		if err == nil && len(d.Reports) > 0 && d.Reports[0].Report.Boot.MarkedGood {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no check-in from the marked-good phone: %+v, %v\n--- hpfleet ---\n%s", d, err, srv.LogTail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	r := d.Reports[0].Report
	if r.Model != "qemu-arm64" || r.Firmware.SecurityVersion != 1 || r.Boot.Slot != "A" || !r.Lockdown.OK || len(r.Slots) != 2 {
		t.Errorf("check-in report = %+v", r)
	}
	vm.Kill(t)
	t.Logf("timeline:\n%s", vm.Timeline())
	t.Logf("scenario zero-touch first boot: %v", time.Since(start).Round(time.Millisecond))
}

// srvPort is the port hpfleet listens on, on 127.0.0.1.
func srvPort(t *testing.T, srv *test.HPFleet) int {
	t.Helper()
	_, p, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(strings.TrimSpace(p), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fleet is hpfleet on the host with its PKI, the vendor's manufacturer CA
// and an admin client.
type fleet struct {
	pki   string // hpfleet's CA directory
	mfg   *test.ManufacturerCA
	srv   *test.HPFleet
	admin *client.Client
}

// startFleet makes the fleet's PKI in dir and starts hpfleet with args
// added to its own.
func startFleet(t *testing.T, dir string, args ...string) *fleet {
	t.Helper()
	fl := newFleet(t, dir)
	fl.start(t, dir, args...)
	return fl
}

// newFleet makes the fleet's PKI and the manufacturer CA in dir; start
// then starts hpfleet (a registrar that trusts the device CA can start in
// between).
func newFleet(t *testing.T, dir string) *fleet {
	t.Helper()
	fl := &fleet{pki: filepath.Join(dir, "fleet-pki")}
	if err := ca.Init(fl.pki, ca.InitOptions{Organization: "Acme Phones", ServerNames: []string{fleetName},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin"}); err != nil {
		t.Fatal(err)
	}
	fl.mfg = test.NewManufacturerCA(t, filepath.Join(dir, "mfg"))
	return fl
}

// start starts hpfleet on the fleet's PKI, its data in dir, with args
// added to its own, and makes the admin client.
func (fl *fleet) start(t *testing.T, dir string, args ...string) {
	t.Helper()
	fl.srv = test.StartHPFleet(t, test.BuildHPFleet(t), filepath.Join(fl.pki, ca.ServerCACertFile), fleetName,
		append([]string{"--data", filepath.Join(dir, "fleet-data"), "--ca-dir", fl.pki, "--manufacturer-ca", fl.mfg.CertFile,
			"--checkin-interval", "10s"}, args...)...)
	roots, err := ca.LoadPool(filepath.Join(fl.pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(fl.pki, ca.AdminCertFile), filepath.Join(fl.pki, ca.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	fl.admin, err = client.New(client.Config{URL: fl.srv.URL, ServerName: fleetName, Roots: roots, Certificate: &adminCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.admin.CloseIdleConnections)
}

// factoryTPM is the factory for a zero-touch phone: a TPM holding the
// maker's EK certificate, the user's SIP password sealed under it and the
// floor at the image's version, no identity key and no certificate; the
// state file lands in dir/data/hardphone (for the data partition). The
// vendor's manifest puts the phone, by the hash of its EK certificate, on
// the fleet's allow-list in group "lab". It returns the TPM's state
// directory.
func (f *fixture) factoryTPM(t *testing.T, dir string, fl *fleet, serial string) string {
	t.Helper()
	sw := test.StartSWTPM(t, test.SWTPMWithEK(fl.mfg))
	state := filepath.Join(dir, "data", "hardphone")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: state, Protector: sw.Spec}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Put("sip/"+sipUser, []byte(f.password)); err != nil {
		t.Fatal(err)
	}
	c, err := creds.Protector().Counter(system.FloorCounterIndex)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AdvanceTo(1); err != nil {
		t.Fatal(err)
	}
	if err := creds.Close(); err != nil {
		t.Fatal(err)
	}
	ekHash := fmt.Sprintf("%x", sha256.Sum256(sw.EKCertECCP256))
	tpmDir := filepath.Join(dir, "tpm")
	sw.Stop(t)
	run(t, "cp", "-a", sw.StateDir, tpmDir)
	res, err := fl.admin.Import(context.Background(), []api.AllowEntry{{Serial: serial, EKSHA256: ekHash, Model: "qemu-arm64", Group: "lab"}})
	if err != nil || res.Added != 1 {
		t.Fatalf("allow-list import: %+v, %v", res, err)
	}
	return tpmDir
}
