package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// fleetEnv is an hpfleet on its embedded store with a fresh fleet PKI and a
// test TPM manufacturer, and a Kamailio that trusts the fleet's device CA
// and binds device certificates to SIP users.
type fleetEnv struct {
	*env
	dir   string
	pki   string
	mfg   *test.ManufacturerCA
	srv   *test.HPFleet
	admin *client.Client
}

const fleetServerName = "fleet.test"

func newFleetEnv(t testing.TB) *fleetEnv {
	t.Helper()
	return newFleetEnvWith(t, fleetSetup{})
}

// fleetSetup adds to the fleet environment: Kamailio options, and hpfleet
// arguments made once Kamailio runs (its RPC URL), in the environment's
// directory.
type fleetSetup struct {
	kamailio []test.KamailioOption
	hpfleet  func(t testing.TB, dir string, k *test.Kamailio) []string
}

func newFleetEnvWith(t testing.TB, s fleetSetup) *fleetEnv {
	t.Helper()
	dir := t.TempDir()
	pki := filepath.Join(dir, "fleet-pki")
	if err := ca.Init(pki, ca.InitOptions{Organization: "Acme Phones", ServerNames: []string{fleetServerName},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin"}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, append([]test.KamailioOption{test.KamailioCA(filepath.Join(pki, ca.DeviceCACertFile)), test.KamailioDeviceUsers()}, s.kamailio...)...)
	mfg := test.NewManufacturerCA(t, filepath.Join(dir, "mfg"))
	args := []string{"--data", filepath.Join(dir, "fleet-data"), "--ca-dir", pki, "--manufacturer-ca", mfg.CertFile,
		"--checkin-interval", "10s"}
	if s.hpfleet != nil {
		args = append(args, s.hpfleet(t, dir, e.k)...)
	}
	srv := test.StartHPFleet(t, test.BuildHPFleet(t), filepath.Join(pki, ca.ServerCACertFile), fleetServerName, args...)
	roots, err := ca.LoadPool(filepath.Join(pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(pki, ca.AdminCertFile), filepath.Join(pki, ca.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(client.Config{URL: srv.URL, ServerName: fleetServerName, Roots: roots, Certificate: &adminCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.CloseIdleConnections)
	return &fleetEnv{env: e, dir: dir, pki: pki, mfg: mfg, srv: srv, admin: admin}
}

// fleetPhone writes the config of a phone whose TPM carries a manufacturer
// EK certificate, puts the phone on the fleet's allow-list as the vendor's
// manifest would, and seeds its SIP password (what the user of the
// account is given; issue 12 delivers it sealed). Nothing else: no key, no
// certificate.
func (f *fleetEnv) fleetPhone(t testing.TB, user, serial string) string {
	t.Helper()
	sw := test.StartSWTPM(t, test.SWTPMWithEK(f.mfg))
	prov := fmt.Sprintf("\n[provision]\nserver = %q\nserver_name = %q\nserver_ca = %q\ndevice_ca = %q\nmodel = \"hp-desk-1\"\ncheckin_interval = \"10s\"\n",
		f.srv.URL, fleetServerName, filepath.Join(f.pki, ca.ServerCACertFile), filepath.Join(f.pki, ca.DeviceCACertFile))
	path := f.writeConfig(t, phoneConf{user: user, certCN: "-", credStore: sw.Spec, mediaSecurity: "default", top: prov})
	// [provision] is a table: it must come after the top-level keys, and
	// writeConfig puts `top` first; move it to the end.
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The calls go to the fleet with the journal (its call rules). The
	// [provision] table stays last: callers append keys to it.
	cfg := strings.Replace(string(body), prov, "", 1) + "\n[events]\nfleet_calls = true\n" + prov
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ek := sha256.Sum256(sw.EKCertECCP256)
	res, err := f.admin.Import(context.Background(), []api.AllowEntry{{Serial: serial, EKSHA256: fmt.Sprintf("%x", ek), Model: "hp-desk-1", Group: "floor-1"}})
	if err != nil || res.Added != 1 {
		t.Fatalf("allow-list import: %+v, %v", res, err)
	}
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: filepath.Join(filepath.Dir(path), "state"), Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Put("sip/"+user, []byte(users[user])); err != nil {
		t.Fatal(err)
	}
	if err := creds.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitEnrolled waits for the agent behind socket to hold a fleet
// certificate and returns its device ID.
func waitEnrolled(t testing.TB, socket string) string {
	t.Helper()
	c := control.NewClient(socket)
	var id string
	waitFor(t, 30*time.Second, func() bool {
		st, err := c.Status(context.Background())
		if err != nil || st.Fleet == nil || !st.Fleet.Enrolled {
			return false
		}
		id = st.Fleet.DeviceID
		return true
	})
	return id
}

// runFleetDemo is the demo's fleet part: two phones that hold nothing but
// a TPM with its manufacturer's EK certificate, their config and their SIP
// password enrol with hpfleet on first start (attested: EK chain,
// allow-list, credential activation), register to Kamailio over mutual TLS
// with the certificates the fleet issued, and call each other over
// DTLS-SRTP; they check in, and the inventory lists them with their
// reports.
func runFleetDemo(t *testing.T) {
	say := func(format string, args ...any) { fmt.Printf("demo[fleet]: "+format+"\n", args...) }
	f := newFleetEnv(t)
	say("hpfleet serving %s on its embedded store (pid %d); the vendor's manifest lists two TPMs", f.srv.URL, f.srv.PID())
	alicePath := f.fleetPhone(t, "alice", "HP1-000001")
	bobPath := f.fleetPhone(t, "bob", "HP1-000002")
	paths := map[string]string{"alice": alicePath, "bob": bobPath}
	ids := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		start := time.Now()
		startAgentProcess(t, "--config", paths[user])
		cfg, err := config.Load(paths[user])
		if err != nil {
			t.Fatal(err)
		}
		ids[user] = waitEnrolled(t, cfg.ControlSocket)
		say("%s's phone enrolled zero-touch as %s in %v (EK chain, allow-list, TPM credential activation)",
			user, ids[user], time.Since(start).Round(time.Millisecond))
		// The registrar's subscriber provisioning: this device is this user.
		f.k.SetDeviceUser(t, ids[user], user)
	}
	if ids["alice"] == ids["bob"] {
		t.Fatalf("both phones enrolled as %s", ids["alice"])
	}
	f.k.WaitRegistered(t, "alice", 30*time.Second)
	f.k.WaitRegistered(t, "bob", 30*time.Second)
	say("both registered to Kamailio over mutual TLS with their fleet certificates")

	acfg, err := config.Load(alicePath)
	if err != nil {
		t.Fatal(err)
	}
	c := control.NewClient(acfg.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := c.Dial(ctx, "", "sip:bob@"+f.k.IP())
	if err != nil {
		t.Fatalf("alice calls bob: %v", err)
	}
	if cs.Media.Security.String() != "dtls-srtp" {
		t.Errorf("call %+v: want DTLS-SRTP", cs)
	}
	time.Sleep(time.Second) // some audio
	if _, err := c.Call(ctx, control.CmdCallHangup, "", cs.ID); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	say("alice called bob: %s, %s, setup %.0f ms", cs.State, cs.Media.Suite, cs.SetupMS)
	// A premium-rate number: the dialling policy refuses it on the phone,
	// the refusal is journaled, and the journal reaches the fleet, proved
	// against the identity key it enrolled, with the call alice made.
	if _, err := c.Dial(ctx, "", "sip:+19005550100@"+f.k.IP()); err == nil {
		t.Fatalf("alice dialled a premium-rate number")
	}
	var ev *api.DeviceEvents
	waitFor(t, 30*time.Second, func() bool {
		ev, err = f.admin.DeviceEvents(context.Background(), ids["alice"], "", 100)
		if err != nil || ev.CallSeq < 1 {
			return false
		}
		for _, r := range ev.Records {
			if r.Kind == "sip.dial_refused" {
				return true
			}
		}
		return false
	})
	if len(ev.Gaps) != 0 {
		t.Errorf("the fleet holds alice's journal with gaps: %+v", ev.Gaps)
	}
	say("alice's phone refused a premium-rate number; hpfleet holds her journal: %d records proved (head %d, last signed %d), calls reported: %d",
		ev.Stored, ev.Head, ev.LastSigned, ev.CallSeq)
	// The attempt is in the calls alice's phone reported: hpfleet's
	// anomaly detector flags the device.
	var premium *api.Finding
	waitFor(t, 30*time.Second, func() bool {
		pg, err := f.admin.Findings(context.Background(), client.FindingQuery{DeviceID: ids["alice"], Rule: "call.premium", Limit: 10})
		if err != nil || len(pg.Findings) == 0 {
			return false
		}
		premium = &pg.Findings[0]
		return true
	})
	say("hpfleet's anomaly detector flagged it: %s (%s) %s", premium.Rule, premium.Severity, premium.Summary)
	// Both check in; the inventory has their reports.
	waitFor(t, 40*time.Second, func() bool {
		for _, id := range ids {
			d, err := f.admin.Device(context.Background(), id)
			if err != nil || len(d.Reports) == 0 {
				return false
			}
		}
		return true
	})
	d, err := f.admin.Device(context.Background(), ids["alice"])
	if err != nil {
		t.Fatal(err)
	}
	if d.Device.Serial != "HP1-000001" || d.Reports[0].Report.Model != "hp-desk-1" || !d.Reports[0].Report.Lockdown.OK {
		t.Errorf("alice's record = %+v / report %+v", d.Device, d.Reports[0].Report)
	}
	out, err := exec.Command(hardphoneBinary(t), "status", "--config", alicePath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fleet: device "+ids["alice"]) {
		t.Errorf("hardphone status: %v\n%s", err, out)
	}
	inv, err := exec.Command(hpctlBinary(t), "fleet", "inventory", "--server", f.srv.URL, "--server-name", fleetServerName, "--pki", f.pki).CombinedOutput()
	if err != nil || !strings.Contains(string(inv), ids["bob"]) {
		t.Fatalf("hpctl fleet inventory: %v\n%s", err, inv)
	}
	say("hpctl fleet inventory:")
	for _, l := range strings.Split(strings.TrimRight(string(inv), "\n"), "\n") {
		say("  %s", l)
	}
}
