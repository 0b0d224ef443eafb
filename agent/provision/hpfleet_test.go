package provision

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/test"
)

// binFleet is the hpfleet binary's PKI and admin client, for tests that
// start the real server (one or more replicas).
type binFleet struct {
	dir   string
	mfg   *test.ManufacturerCA
	fleet // serverRoots, deviceCA (the in-process parts unused)
}

func newBinFleet(t testing.TB) *binFleet {
	t.Helper()
	dir := initPKI(t)
	b := &binFleet{dir: dir, mfg: test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))}
	var err error
	if b.serverRoots, err = ca.LoadPool(filepath.Join(dir, ca.ServerCACertFile)); err != nil {
		t.Fatalf("LoadPool: %v", err)
	}
	if b.deviceCA, err = ca.LoadCertificate(filepath.Join(dir, ca.DeviceCACertFile)); err != nil {
		t.Fatalf("LoadCertificate: %v", err)
	}
	return b
}

// start runs a replica with the store flags given.
func (b *binFleet) start(t testing.TB, bin string, storeArgs ...string) *test.HPFleet {
	t.Helper()
	args := append([]string{"--ca-dir", b.dir, "--manufacturer-ca", b.mfg.CertFile}, storeArgs...)
	return test.StartHPFleet(t, bin, filepath.Join(b.dir, ca.ServerCACertFile), "fleet.test", args...)
}

// admin is an admin client of replica h.
func (b *binFleet) admin(t testing.TB, h *test.HPFleet) *client.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(b.dir, ca.AdminCertFile), filepath.Join(b.dir, ca.AdminKeyFile))
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	c, err := client.New(client.Config{URL: h.URL, ServerName: "fleet.test", Roots: b.serverRoots, Certificate: &cert})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// provisioner is phone p's client for replica h.
func (b *binFleet) provisioner(t testing.TB, p *phone, h *test.HPFleet) *Client {
	t.Helper()
	c, err := New(Config{Credentials: p.creds, ServerURL: h.URL, ServerName: "fleet.test", ServerRoots: b.serverRoots,
		DeviceCA: b.deviceCA, Wipe: p.creds.Wipe}, WithBackoff(10*time.Millisecond, 200*time.Millisecond), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// soak is true under `make soak` (HARDPHONE_SOAK=1): the long variants.
var soak = os.Getenv("HARDPHONE_SOAK") == "1"

// TestHPFleetReplicas: two hpfleet replicas on one PostgreSQL database.
// Phones enrol through one and renew and check in through the other;
// then one replica is killed (SIGKILL) while the phones check in through
// both, and every check-in a replica acknowledged is in the database.
// Under make soak: 12 phones, 10 rounds of kill and restart, 300
// check-ins a round.
func TestHPFleetReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	bin := test.BuildHPFleet(t)
	pg := test.StartPostgres(t)
	b := newBinFleet(t)
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	writeFile(t, dsnFile, pg.DSN)
	ra := b.start(t, bin, "--postgres", "@"+dsnFile)
	rb := b.start(t, bin, "--postgres", "@"+dsnFile)
	adminA, adminB := b.admin(t, ra), b.admin(t, rb)

	n, rounds, perRound := 3, 1, int64(15)
	if soak {
		n, rounds, perRound = 12, 10, 150
	}
	phones := make([]*phone, n)
	var entries []api.AllowEntry
	for i := range phones {
		phones[i] = newPhone(t, b.mfg)
		entries = append(entries, phones[i].allowEntry(i))
	}
	if _, err := adminB.Import(ctx, entries); err != nil {
		t.Fatalf("Import via B error %v", err)
	}
	viaA := make([]*Client, n)
	viaB := make([]*Client, n)
	for i, p := range phones {
		viaA[i], viaB[i] = b.provisioner(t, p, ra), b.provisioner(t, p, rb)
		if _, err := viaA[i].EnrolOnce(ctx); err != nil {
			t.Fatalf("phone %d: EnrolOnce via A error %v", i, err)
		}
		if _, err := viaB[i].Renew(ctx); err != nil {
			t.Fatalf("phone %d: Renew via B error %v", i, err)
		}
		if _, err := viaB[i].CheckIn(ctx, report()); err != nil {
			t.Fatalf("phone %d: CheckIn via B error %v", i, err)
		}
	}
	// Both replicas see the same fleet.
	for name, c := range map[string]*client.Client{"A": adminA, "B": adminB} {
		inv, err := c.Inventory(ctx, "", 0)
		if err != nil || len(inv.Devices) != n {
			t.Fatalf("Inventory via %s = %d devices, %v, want %d", name, len(inv.Devices), err, n)
		}
	}

	acked := make([]atomic.Int64, n)
	for round := range rounds {
		if round > 0 {
			ra.Restart(t)
		}
		checkInThroughKill(t, ra, viaA, viaB, acked, perRound)
	}
	for i := range phones {
		st, err := viaB[i].Status()
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		det, err := adminB.Device(ctx, st.DeviceID)
		if err != nil {
			t.Fatalf("Device error %v", err)
		}
		// One check-in before the run, then the acknowledged ones; a
		// check-in cut off by the kill may or may not have committed.
		got, want := int64(len(det.Reports)), 1+acked[i].Load()
		if got < min(want, 100) {
			t.Fatalf("phone %d: %d reports stored, but %d check-ins were acknowledged: lost", i, got, want)
		}
	}
	// A comes back and serves the same fleet.
	ra.Restart(t)
	if _, err := viaA[0].Renew(ctx); err != nil {
		t.Fatalf("Renew via restarted A error %v", err)
	}
}

// checkInThroughKill has every phone check in through both replicas,
// alternating, and kills A (SIGKILL) once perRound check-ins were
// acknowledged; it returns after another perRound through B.
func checkInThroughKill(t *testing.T, ra *test.HPFleet, viaA, viaB []*Client, acked []atomic.Int64, perRound int64) {
	t.Helper()
	base := total(acked)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var killed atomic.Bool
	for i := range viaA {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				c := viaB[i]
				if k%2 == 0 && !killed.Load() {
					c = viaA[i]
				}
				if _, err := c.CheckIn(ctx, report()); err == nil {
					acked[i].Add(1)
				} else if c == viaB[i] {
					t.Errorf("phone %d: CheckIn via B error %v", i, err)
					return
				}
			}
		}()
	}
	reach := func(n int64) {
		for deadline := time.Now().Add(2 * time.Minute); total(acked) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%d check-ins acknowledged in 2 minutes, want %d", total(acked)-base, n-base)
			}
		}
	}
	reach(base + perRound)
	ra.Kill(t)
	killed.Store(true)
	reach(base + 2*perRound)
	close(stop)
	wg.Wait()
}

func total(a []atomic.Int64) int64 {
	var s int64
	for i := range a {
		s += a[i].Load()
	}
	return s
}

// TestHPFleetKillMidEnrolment: the server is killed (SIGKILL) while phones
// enrol, at whatever point each is; after a restart, no device lacks its
// certificate, every phone that got a certificate is the device it names,
// and every phone enrols. A round whose start the old process answered
// finishes on the new one: the challenge was in the store.
func TestHPFleetKillMidEnrolment(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	bin := test.BuildHPFleet(t)
	b := newBinFleet(t)
	data := filepath.Join(t.TempDir(), "data")
	h := b.start(t, bin, "--data", data)
	admin := b.admin(t, h)
	const n = 4
	phones := make([]*phone, n)
	var entries []api.AllowEntry
	for i := range phones {
		phones[i] = newPhone(t, b.mfg)
		entries = append(entries, phones[i].allowEntry(i))
	}
	extra := newPhone(t, b.mfg)
	entries = append(entries, extra.allowEntry(n))
	if _, err := admin.Import(ctx, entries); err != nil {
		t.Fatalf("Import error %v", err)
	}
	// A round started before the kill, finished after it.
	if err := extra.creds.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	pe := b.provisioner(t, extra, h)
	att, err := attester{pe}.Attest(ctx)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	start, err := pe.enrol.EnrolStart(ctx, api.EnrolStartRequest{EKType: att.EKType, EKCert: att.EKCert, IdentityPublic: att.IdentityPublic, CSR: att.CSR})
	if err != nil {
		t.Fatalf("EnrolStart: %v", err)
	}

	// The others enrol concurrently while the server dies.
	var wg sync.WaitGroup
	results := make([]error, n)
	for i, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = b.provisioner(t, p, h).EnrolOnce(ctx)
		}()
	}
	for {
		m, err := admin.Metrics(ctx)
		if err != nil {
			t.Fatalf("Metrics: %v", err)
		}
		if m.Counters["requests.enrol_start"] >= 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Kill(t)
	wg.Wait()
	h.Restart(t)

	secret, err := attester{pe}.Activate(ctx, att.EKType, start.CredentialBlob, start.EncryptedSecret)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if _, err := pe.enrol.EnrolFinish(ctx, api.EnrolFinishRequest{ChallengeID: start.ChallengeID, Secret: secret}); err != nil {
		t.Fatalf("EnrolFinish on the restarted server error %v", err)
	}
	// Every phone: either it got its certificate before the kill, or it
	// enrols now (a device created whose answer was lost: re-enrolment
	// with the same key).
	lost := 0
	for i, p := range phones {
		c := b.provisioner(t, p, h)
		if results[i] != nil {
			lost++
		}
		st, err := c.Enrol(ctx)
		if err != nil {
			t.Fatalf("phone %d: Enrol after restart error %v", i, err)
		}
		det, err := admin.Device(ctx, st.DeviceID)
		if err != nil {
			t.Fatalf("phone %d: Device(%s) error %v", i, st.DeviceID, err)
		}
		id, err := p.creds.Identity()
		if err != nil {
			t.Fatalf("Identity: %v", err)
		}
		found := false
		for _, c := range det.Certs {
			if c.Serial == serialHex(id.Leaf.SerialNumber.Bytes()) {
				found = true
			}
		}
		if !found {
			t.Fatalf("phone %d: its certificate %x is not among device %s's %+v", i, id.Leaf.SerialNumber, st.DeviceID, det.Certs)
		}
	}
	t.Logf("%d of %d enrolments were cut off by the kill", lost, n)
	inv, err := admin.Inventory(ctx, "", 0)
	if err != nil || len(inv.Devices) != n+1 {
		t.Fatalf("Inventory = %d devices, %v, want %d", len(inv.Devices), err, n+1)
	}
	for _, d := range inv.Devices {
		det, err := admin.Device(ctx, d.ID)
		if err != nil || len(det.Certs) == 0 || d.CertSerial == "" {
			t.Fatalf("device %s without a certificate (%v): half-enrolled", d.ID, err)
		}
	}
}

func serialHex(b []byte) string {
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 0, 32)
	for i := 0; i < 16-len(b); i++ {
		out = append(out, '0', '0')
	}
	for _, c := range b {
		out = append(out, hexdigits[c>>4], hexdigits[c&15])
	}
	return string(out)
}
