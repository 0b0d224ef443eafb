package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/adminauth/pgauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/rollout/rollouttest"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

const (
	fleetName      = "fleet.test"
	testCompatible = "hardphone-test-board"
	// sessionUA is hpctl's User-Agent (cmd/hpctl.SessionUserAgent): the
	// sessions made here are bound to it.
	sessionUA = "hpctl-console/1"
)

var (
	binOnce              sync.Once
	hpfleetBin, hpctlBin string
)

// binaries builds hpfleet and hpctl once for the test binary.
func binaries(t *testing.T) (string, string) {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hpfleet-rollout-bin-")
		if err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		for name, out := range map[string]*string{"hpfleet": &hpfleetBin, "hpctl": &hpctlBin} {
			*out = filepath.Join(dir, name)
			cmd := exec.Command("go", "build", "-trimpath", "-o", *out, "./cmd/"+name)
			cmd.Dir = filepath.Join("..", "..")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", name, err, b)
			}
		}
	})
	if hpfleetBin == "" {
		t.Fatalf("binaries not built")
	}
	return hpfleetBin, hpctlBin
}

// admin is an admin of the binary test: a client certificate naming it
// and a session token file (as hpctl reads them).
type admin struct {
	name                       string
	certFile, keyFile, session string
}

// TestRolloutBinary runs hpfleet (the binary) on bbolt and on PostgreSQL
// with its director, admin sessions, audit log and syslog export to
// rsyslog over TLS, and drives a three-ring rollout with hpctl (the
// binary) over simulated phones: a viewer cannot approve, a second admin
// can; the rings advance as the phones report; an auditor exports the
// audit trail, hpctl verifies it against the collector's copy of the
// checkpoints, and names an edited entry and a truncated log.
func TestRolloutBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) { testRolloutBinary(t, backend) })
	}
}

// binWorld is hpfleet (the binary) with everything it talks to, admins
// with sessions, and three phones of group floor-1.
type binWorld struct {
	dir, pki  string
	hpctlPath string
	fleet     *test.HPFleet
	rs        *test.Rsyslog
	admins    map[string]admin
	phones    []*rollouttest.Phone
	approvers []string // approvers' key files, listed in the director root
}

func (b *binWorld) hpctl(a admin, args ...string) (string, error) {
	full := append(args, "--server", b.fleet.URL, "--server-name", fleetName, "--server-ca", filepath.Join(b.pki, ca.ServerCACertFile),
		"--cert", a.certFile, "--key", a.keyFile, "--session", a.session)
	cmd := exec.Command(b.hpctlPath, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// newBinWorld starts it; approvers > 0 lists that many admins' keys in
// the director root's targets beside the online key, at threshold.
func newBinWorld(t *testing.T, backend string, approvers, threshold int) *binWorld {
	hpfleetPath, hpctlPath := binaries(t)
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if err := ca.Init(pki, ca.InitOptions{Organization: "Acme Phones", ServerNames: []string{fleetName},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin"}); err != nil {
		t.Fatalf("ca.Init: %v", err)
	}
	if _, err := audit.WriteKeyFiles(filepath.Join(pki, AuditKeyFile), filepath.Join(pki, AuditKeyFile+".pub"), fleetName+"/audit"); err != nil {
		t.Fatalf("audit key: %v", err)
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(dir, "mfg"))
	keyDir := filepath.Join(dir, "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	key := func(name string) *tufrepo.Key {
		k, err := tufrepo.GenerateKey(filepath.Join(keyDir, name+".pem"), tufrepo.AlgECDSAP256)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		return k
	}
	role := func(k *tufrepo.Key) tufrepo.RoleKeys { return tufrepo.RoleKeys{Keys: []*tufrepo.Key{k}, Threshold: 1} }

	// The image repository on nginx, with one bundle.
	ngx := test.StartStaticNginx(t)
	imgDir := filepath.Join(ngx.Root, "image")
	itgt, isnap, its := key("image-targets"), key("image-snap"), key("image-ts")
	image, err := tufrepo.Init(imgDir, tufrepo.InitParams{Root: role(key("image-root")), Targets: role(itgt), Snapshot: role(isnap), Timestamp: role(its)})
	if err != nil {
		t.Fatalf("image Init: %v", err)
	}
	upki := test.NewUpdatePKI(t, filepath.Join(dir, "update-pki"))
	img := filepath.Join(dir, "rootfs.img")
	rnd := make([]byte, 16<<10)
	_, _ = rand.Read(rnd) // crypto/rand.Read never fails
	if err := os.WriteFile(img, rnd, 0o644); err != nil {
		t.Fatalf("image: %v", err)
	}
	bfile := filepath.Join(dir, "hardphone-2.0.0.raucb")
	m := &bundle.Manifest{Compatible: testCompatible, Version: "2.0.0", SecurityVersion: 4, HasSecurityVersion: true,
		Images: []bundle.Image{{SlotClass: "rootfs", Filename: "rootfs.img"}}}
	if err := bundle.Create(bctx, bfile, m, map[string]string{"rootfs.img": img}, bundle.Signer{Cert: upki.Leaf.Cert, Key: upki.Leaf.Key}); err != nil {
		t.Fatalf("bundle.Create: %v", err)
	}
	kr, err := bundle.LoadKeyring(upki.CA.CertFile)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	if _, err := image.AddBundle(bfile, "hardphone-2.0.0.raucb", kr, []*tufrepo.Key{itgt}); err != nil {
		t.Fatalf("AddBundle: %v", err)
	}
	if _, err := image.Publish(tufrepo.SigningKeys{Snapshot: []*tufrepo.Key{isnap}, Timestamp: []*tufrepo.Key{its}}); err != nil {
		t.Fatalf("image Publish: %v", err)
	}
	imgRoot, err := os.ReadFile(filepath.Join(imgDir, "public", "1.root.json"))
	if err != nil {
		t.Fatalf("image root: %v", err)
	}

	// The director's root (its root key offline; the rest online).
	dirRepo := filepath.Join(dir, "director-root")
	dtgt, dsnap, dts := key("dir-targets"), key("dir-snap"), key("dir-ts")
	targets := role(dtgt)
	var apFiles []string
	for i := 0; i < approvers; i++ {
		targets.Keys = append(targets.Keys, key(fmt.Sprintf("approver-%d", i)))
		apFiles = append(apFiles, filepath.Join(keyDir, fmt.Sprintf("approver-%d.pem", i)))
	}
	if threshold > 0 {
		targets.Threshold = threshold
	}
	dr, err := tufrepo.Init(dirRepo, tufrepo.InitParams{Root: role(key("dir-root")), Targets: targets, Snapshot: role(dsnap), Timestamp: role(dts)})
	if err != nil {
		t.Fatalf("director Init: %v", err)
	}
	for _, k := range targets.Keys {
		if err := dr.Sign(tufrepo.RoleTargets, k); err != nil {
			t.Fatalf("director root Sign: %v", err)
		}
	}
	if _, err := dr.Publish(tufrepo.SigningKeys{Snapshot: []*tufrepo.Key{dsnap}, Timestamp: []*tufrepo.Key{dts}}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}
	dirRoot, err := os.ReadFile(filepath.Join(dirRepo, "public", "1.root.json"))
	if err != nil {
		t.Fatalf("director root: %v", err)
	}

	// The syslog collector.
	spki := test.NewPKI(t, filepath.Join(dir, "syslog-pki"))
	rs := test.StartRsyslog(t, spki, "hpfleet")
	scert, skey, _ := spki.Client("hpfleet")

	// Admins and their sessions, in the store hpfleet will open.
	data := filepath.Join(dir, "data")
	var storeArg []string
	var auth *adminauth.Authenticator
	closeAuth := func() {}
	switch backend {
	case "bbolt":
		as, err := boltauth.Open(filepath.Join(data, "adminauth"))
		if err != nil {
			t.Fatalf("boltauth.Open: %v", err)
		}
		closeAuth = func() { as.Close() }
		if auth, err = adminauth.New(as); err != nil {
			t.Fatalf("adminauth.New: %v", err)
		}
		storeArg = []string{"--data", data}
	case "postgres":
		pg := test.StartPostgres(t)
		dsn := pg.NewDatabase(t)
		as, err := pgauth.Open(bctx, dsn, 2)
		if err != nil {
			t.Fatalf("pgauth.Open: %v", err)
		}
		closeAuth = func() { as.Close() }
		if auth, err = adminauth.New(as); err != nil {
			t.Fatalf("adminauth.New: %v", err)
		}
		dsnFile := filepath.Join(dir, "dsn")
		if err := os.WriteFile(dsnFile, []byte(dsn), 0o600); err != nil {
			t.Fatalf("write: %v", err)
		}
		storeArg = []string{"--postgres", "@" + dsnFile}
	}
	adminCA, err := ca.Load(filepath.Join(pki, ca.AdminCACertFile), filepath.Join(pki, ca.AdminCAKeyFile))
	if err != nil {
		t.Fatalf("admin CA: %v", err)
	}
	admins := map[string]admin{}
	for name, r := range map[string]adminauth.Role{"admin": adminauth.RoleSecurityAdmin, "sid": adminauth.RoleSecurityAdmin,
		"sasha": adminauth.RoleSecurityAdmin, "olivia": adminauth.RoleOperator,
		"alice": adminauth.RoleOperator, "bob": adminauth.RoleOperator, "vera": adminauth.RoleViewer, "audrey": adminauth.RoleAuditor} {
		admins[name] = makeAdmin(t, dir, auth, adminCA, name, r)
	}
	closeAuth()

	args := append(storeArg, "--ca-dir", pki, "--manufacturer-ca", mfg.CertFile, "--log-level", "debug",
		"--director", dirRepo, "--director-targets-key", filepath.Join(keyDir, "dir-targets.pem"),
		"--director-snapshot-key", filepath.Join(keyDir, "dir-snap.pem"), "--director-timestamp-key", filepath.Join(keyDir, "dir-ts.pem"),
		"--image-url", ngx.URL+"/image/public/", "--image-root", filepath.Join(imgDir, "public", "1.root.json"),
		"--director-interval", "1s", "--rollout-interval", "1s", "--audit-checkpoint-interval", "1s",
		"--audit-syslog", rs.Addr, "--audit-syslog-ca", spki.CAFile, "--audit-syslog-server-name", rs.ServerName,
		"--audit-syslog-cert", scert, "--audit-syslog-key", skey)
	fleet := test.StartHPFleet(t, hpfleetPath, filepath.Join(pki, ca.ServerCACertFile), fleetName, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hpfleet log ---\n%s", fleet.LogTail())
		}
	})

	// Three phones of group floor-1.
	roots, err := ca.LoadPool(filepath.Join(pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatalf("roots: %v", err)
	}
	deviceCA, err := ca.LoadCertificate(filepath.Join(pki, ca.DeviceCACertFile))
	if err != nil {
		t.Fatalf("device CA: %v", err)
	}
	acert, err := tlsPair(admins["admin"])
	if err != nil {
		t.Fatalf("admin certificate: %v", err)
	}
	ac, err := client.New(client.Config{URL: fleet.URL, ServerName: fleetName, Roots: roots, Certificate: acert})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	// The simulated factory (allow-list import) is the security admin's,
	// with its session: every admin endpoint wants one here.
	tok, err := os.ReadFile(admins["admin"].session)
	if err != nil {
		t.Fatalf("admin session: %v", err)
	}
	if ac, err = ac.WithSession(strings.TrimSpace(string(tok)), sessionUA); err != nil {
		t.Fatalf("WithSession: %v", err)
	}
	var phones []*rollouttest.Phone
	for i := 0; i < 3; i++ {
		sw := test.StartSWTPM(t, test.SWTPMWithEK(mfg))
		tp, err := tpm.Open(sw.Spec)
		if err != nil {
			t.Fatalf("tpm.Open: %v", err)
		}
		t.Cleanup(func() { tp.Close() })
		phones = append(phones, rollouttest.New(t, rollouttest.Config{URL: fleet.URL, ServerName: fleetName, Roots: roots,
			DeviceCA: deviceCA, TPM: tp, EKCert: sw.EKCertECCP256, Admin: ac, Group: "floor-1", Serial: fmt.Sprintf("SN-%d", i),
			ImageURL: ngx.URL + "/image/public/", ImageRoot: imgRoot, DirectorRoot: dirRoot, Compatible: testCompatible, Clock: time.Now}))
	}
	return &binWorld{dir: dir, pki: pki, hpctlPath: hpctlPath, fleet: fleet, rs: rs, admins: admins, phones: phones, approvers: apFiles}
}

func testRolloutBinary(t *testing.T, backend string) {
	b := newBinWorld(t, backend, 0, 1)
	dir, pki, hpctlPath, rs, admins, phones := b.dir, b.pki, b.hpctlPath, b.rs, b.admins, b.phones
	hpctl := b.hpctl

	// hpctl: start, refuse a viewer's approval, approve as a second admin.
	out, err := hpctl(admins["olivia"], "fleet", "rollout", "create", "--group", "floor-1", "--firmware", "hardphone-2.0.0.raucb",
		"--ring", "canary="+phones[0].ID, "--ring", "half=50%", "--ring", "100%", "--deadline", "10m", "--report-timeout", "10m", "--json")
	if err != nil {
		t.Fatalf("hpctl fleet rollout create: %v\n%s", err, out)
	}
	var v api.Rollout
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("rollout create output: %v\n%s", err, out)
	}
	if out, err := hpctl(admins["vera"], "fleet", "approve", v.ID, "--yes"); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("hpctl fleet approve as a viewer: %v\n%s\nwant a forbidden refusal", err, out)
	}
	if out, err := hpctl(admins["olivia"], "fleet", "approve", v.ID, "--yes"); err == nil || !strings.Contains(out, "second, different admin") {
		t.Fatalf("hpctl fleet approve by its creator: %v\n%s\nwant a refusal", err, out)
	}
	start := time.Now()
	if out, err := hpctl(admins["alice"], "fleet", "approve", v.ID, "--yes"); err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("hpctl fleet approve: %v\n%s", err, out)
	}
	// The phones follow; hpfleet's loop advances the rings.
	v = *b.follow(t, v.ID, firmwareFollower(phones))
	if v.State != "completed" {
		t.Fatalf("rollout = %s:\n%s", v.State, mustShow(t, hpctl, admins["olivia"], v.ID))
	}
	t.Logf("3-ring rollout through the hpfleet and hpctl binaries over %d simulated phones (%s): %v from approval to completed (rollout loop every 1s)",
		len(phones), backend, time.Since(start).Round(time.Millisecond))

	// The audit trail: exported by an auditor, verified against the
	// collector's checkpoints; an edit and a truncation are named.
	export := filepath.Join(dir, "audit.jsonl")
	if out, err := hpctl(admins["vera"], "fleet", "audit", "export", "-o", filepath.Join(dir, "vera.jsonl")); err == nil {
		t.Fatalf("hpctl fleet audit export as a viewer succeeded:\n%s", out)
	}
	if out, err := hpctl(admins["audrey"], "fleet", "audit", "export", "-o", export); err != nil {
		t.Fatalf("hpctl fleet audit export: %v\n%s", err, out)
	}
	exp, err := os.ReadFile(export)
	if err != nil {
		t.Fatalf("read export: %v", err)
	}
	size := exportSize(t, exp)
	// The collector receives the checkpoint of the whole export (the
	// exporter sends each new one within a second or so).
	rs.WaitLines(t, time.Minute, func(lines []string) bool {
		notes, err := audit.ParseSyslogCheckpoints(strings.NewReader(strings.Join(lines, "\n")))
		return err == nil && hasSize(notes, size)
	})
	verify := func(file string) (string, error) {
		cmd := exec.Command(hpctlPath, "fleet", "audit", "verify", "--trust", filepath.Join(pki, AuditKeyFile+".pub"), "--collector", rs.OutFile, file)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := verify(export); err != nil || !strings.Contains(out, "audit log verified") {
		t.Fatalf("hpctl fleet audit verify: %v\n%s", err, out)
	}
	edited := bytes.Replace(exp, []byte(`"rollout.ring_start"`), []byte(`"rollout.ring_stop"`), 1)
	if err := os.WriteFile(filepath.Join(dir, "edited.jsonl"), edited, 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	if out, err := verify(filepath.Join(dir, "edited.jsonl")); err == nil || !strings.Contains(out, "NOT verified") {
		t.Fatalf("hpctl fleet audit verify (edited entry): %v\n%s\nwant a refusal", err, out)
	}
	lines := bytes.Split(bytes.TrimSuffix(exp, []byte("\n")), []byte("\n"))
	var kept [][]byte
	for _, l := range lines[:len(lines)-4] {
		if !bytes.Contains(l, []byte(`"checkpoint"`)) {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cut.jsonl"), append(bytes.Join(kept, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	if out, err := verify(filepath.Join(dir, "cut.jsonl")); err == nil || !strings.Contains(out, "NOT verified") {
		t.Fatalf("hpctl fleet audit verify (truncated, checkpoints dropped): %v\n%s\nwant the collector's checkpoint to name the cut", err, out)
	}
}

func mustShow(t *testing.T, hpctl func(admin, ...string) (string, error), a admin, id string) string {
	out, err := hpctl(a, "fleet", "rollout", "show", id)
	if err != nil {
		return fmt.Sprintf("show: %v\n%s", err, out)
	}
	return out
}

// exportSize reads the tree size an export's header states.
func exportSize(t *testing.T, exp []byte) int64 {
	t.Helper()
	first, _, _ := bytes.Cut(exp, []byte("\n"))
	var h struct {
		Size *int64 `json:"size"`
	}
	if err := json.Unmarshal(first, &h); err != nil || h.Size == nil {
		t.Fatalf("export header %q: %v", first, err)
	}
	return *h.Size
}

func hasSize(notes [][]byte, size int64) bool {
	for _, n := range notes {
		if bytes.Contains(n, []byte(fmt.Sprintf("\n%d\n", size))) {
			return true
		}
	}
	return false
}

// makeAdmin creates an admin with a TOTP second factor and a session bound
// to hpctl (127.0.0.1, its user agent), and a client certificate naming
// it; the token goes to a 0600 file for hpctl --session.
func makeAdmin(t *testing.T, dir string, auth *adminauth.Authenticator, adminCA *ca.CA, name string, role adminauth.Role) admin {
	t.Helper()
	pw := "correct horse battery " + name
	if _, err := auth.CreateAdmin(bctx, name, pw, role); err != nil {
		t.Fatalf("CreateAdmin(%s): %v", name, err)
	}
	c := adminauth.Client{Addr: netip.MustParseAddr("127.0.0.1"), UserAgent: sessionUA}
	res, err := auth.Login(bctx, name, pw, c)
	if err != nil {
		t.Fatalf("Login(%s): %v", name, err)
	}
	en, err := auth.BeginTOTPEnrolment(bctx, res.Token, c)
	if err != nil {
		t.Fatalf("BeginTOTPEnrolment(%s): %v", name, err)
	}
	tok, err := auth.FinishTOTPEnrolment(bctx, res.Token, authtest.Code(t, en.Secret, time.Now()), c)
	if err != nil {
		t.Fatalf("FinishTOTPEnrolment(%s): %v", name, err)
	}
	a := admin{name: name, certFile: filepath.Join(dir, name+".crt"), keyFile: filepath.Join(dir, name+".key"), session: filepath.Join(dir, name+".session")}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	der, err := adminCA.IssueAdmin(key.Public(), name, time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatalf("IssueAdmin: %v", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{a.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})},
		{a.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})},
		{a.session, []byte(tok + "\n")},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	return a
}

// tlsPair loads an admin's certificate for fleet/client.
func tlsPair(a admin) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(a.certFile, a.keyFile)
	return &c, err
}

// TestSignedApprovalBinary: the director root wants three targets
// signatures, the online key's and two admins'. Each admin registers a
// key (hpctl fleet approver-key register, proving possession) and
// approves with hpctl fleet approve --approver-key, which checks every
// staged targets against the rollout and shows what it signs; one
// admin's signatures leave the rollout pending, two start it, and the
// phones, which verify the three signatures, move ring by ring.
func TestSignedApprovalBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	b := newBinWorld(t, "bbolt", 2, 3)
	for i, name := range []string{"alice", "bob"} {
		if out, err := b.hpctl(b.admins[name], "fleet", "approver-key", "register", "--approver-key", b.approvers[i]); err != nil {
			t.Fatalf("hpctl fleet approver-key register (%s): %v\n%s", name, err, out)
		}
	}
	if out, err := b.hpctl(b.admins["olivia"], "fleet", "approver-key", "register", "--approver-key", b.approvers[0]); err == nil {
		t.Fatalf("hpctl fleet approver-key register (alice's key, by olivia) succeeded:\n%s", out)
	}
	out, err := b.hpctl(b.admins["olivia"], "fleet", "rollout", "create", "--group", "floor-1", "--firmware", "hardphone-2.0.0.raucb",
		"--ring", "canary="+b.phones[0].ID, "--ring", "100%", "--deadline", "10m", "--report-timeout", "10m", "--json")
	if err != nil {
		t.Fatalf("hpctl fleet rollout create: %v\n%s", err, out)
	}
	var v api.Rollout
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Signatures != 2 {
		t.Fatalf("rollout create = %+v, %v; want 2 signatures needed", v, err)
	}
	if out, err := b.hpctl(b.admins["alice"], "fleet", "approve", v.ID, "--yes"); err == nil || !strings.Contains(out, "--approver-key") {
		t.Fatalf("hpctl fleet approve without a key: %v\n%s\nwant the key asked for", err, out)
	}
	out, err = b.hpctl(b.admins["alice"], "fleet", "approve", v.ID, "--yes", "--approver-key", b.approvers[0])
	if err != nil || !strings.Contains(out, "checked 3 device(s): 3 to sign") || !strings.Contains(out, "is pending") {
		t.Fatalf("hpctl fleet approve (alice): %v\n%s\nwant 3 devices checked and signed, still pending", err, out)
	}
	if _, err := b.phones[0].Assigned(); err == nil {
		t.Fatalf("the canary has director metadata on one admin's signatures")
	}
	start := time.Now()
	out, err = b.hpctl(b.admins["bob"], "fleet", "approve", v.ID, "--yes", "--approver-key", b.approvers[1])
	if err != nil || !strings.Contains(out, "is running") {
		t.Fatalf("hpctl fleet approve (bob): %v\n%s\nwant running", err, out)
	}
	v = *b.follow(t, v.ID, firmwareFollower(b.phones))
	if v.State != "completed" || len(v.Approvals) != 2 {
		t.Fatalf("signed rollout = %s with %d approvals, want completed with 2", v.State, len(v.Approvals))
	}
	t.Logf("2-ring rollout signed by two admins with hpctl, through the binaries: %v from the second signature to completed",
		time.Since(start).Round(time.Millisecond))
}

// TestSignedDeviceRolloutBinary: under a director root that wants two
// admins' signatures beside the online key, one phone's own document
// that changes its security policy goes out as a device-scope rollout: a
// security admin creates it with hpctl fleet rollout create --device, two
// other security admins approve it with their keys (hpctl checks the one
// staged document against the group's, none here, under the rollout's),
// and it moves that phone only.
func TestSignedDeviceRolloutBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	b := newBinWorld(t, "bbolt", 2, 3)
	for i, name := range []string{"sid", "sasha"} {
		if out, err := b.hpctl(b.admins[name], "fleet", "approver-key", "register", "--approver-key", b.approvers[i]); err != nil {
			t.Fatalf("hpctl fleet approver-key register (%s): %v\n%s", name, err, out)
		}
	}
	own := filepath.Join(t.TempDir(), "own.toml")
	doc := "[[account]]\nname = \"line1\"\nuser = \"1001\"\nregistrar = \"sip.example.test:5061\"\npassword_cred = \"sip/line1\"\nanswer = \"auto\"\n"
	if err := os.WriteFile(own, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := b.phones[1]
	create := []string{"fleet", "rollout", "create", "--device", dev.ID, "--config", own, "--ring", "it=100%", "--deadline", "10m",
		"--report-timeout", "10m", "--json"}
	if out, err := b.hpctl(b.admins["olivia"], create...); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("hpctl fleet rollout create --device (operator, a policy change): %v\n%s\nwant forbidden", err, out)
	}
	out, err := b.hpctl(b.admins["admin"], create...)
	if err != nil {
		t.Fatalf("hpctl fleet rollout create --device: %v\n%s", err, out)
	}
	var v api.Rollout
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Device != dev.ID || v.Group != "floor-1" || v.Signatures != 2 || len(v.PolicyChange) == 0 {
		t.Fatalf("device rollout create = %+v, %v; want device %s of floor-1, a policy change, 2 signatures needed", v, err, dev.ID)
	}
	out, err = b.hpctl(b.admins["sid"], "fleet", "approve", v.ID, "--yes", "--approver-key", b.approvers[0])
	if err != nil || !strings.Contains(out, "checked 1 device(s): 1 to sign") || !strings.Contains(out, "is pending") {
		t.Fatalf("hpctl fleet approve (sid): %v\n%s\nwant the one device checked and signed, still pending", err, out)
	}
	start := time.Now()
	out, err = b.hpctl(b.admins["sasha"], "fleet", "approve", v.ID, "--yes", "--approver-key", b.approvers[1])
	if err != nil || !strings.Contains(out, "is running") {
		t.Fatalf("hpctl fleet approve (sasha): %v\n%s\nwant running", err, out)
	}
	before := map[string]uint64{}
	for _, p := range b.phones {
		before[p.ID] = p.GoodConfig
	}
	v = *b.follow(t, v.ID, func() {
		if a, err := dev.Assigned(); err == nil && a.Config != nil && a.Config.Version > dev.GoodConfig {
			dev.Follow(rollouttest.Healthy)
		}
	})
	if v.State != "completed" || len(v.Approvals) != 2 {
		t.Fatalf("device rollout = %s with %d approvals (%+v), want completed with 2", v.State, len(v.Approvals), v.Halt)
	}
	if dev.GoodConfig == before[dev.ID] {
		t.Fatalf("%s still runs document v%d after its rollout", dev.ID, dev.GoodConfig)
	}
	for _, p := range b.phones {
		if p == dev {
			continue
		}
		// The others were never named a document (their director
		// metadata, if any, names none).
		if a, err := p.Assigned(); p.GoodConfig != before[p.ID] || err == nil && a.Config != nil {
			t.Fatalf("phone %s moved to document v%d (assigned %+v, %v), want only %s moved", p.ID, p.GoodConfig, a, err, dev.ID)
		}
	}
	t.Logf("device-scope policy rollout signed by two security admins with hpctl: %v from the second signature to completed",
		time.Since(start).Round(time.Millisecond))
}

// follow runs the phones' side (each call of step plays one check-in
// cycle) and polls the rollout with hpctl as a viewer until it completes
// or halts, at most 2 minutes.
func (b *binWorld) follow(t *testing.T, id string, step func()) *api.Rollout {
	t.Helper()
	var v api.Rollout
	for start := time.Now(); ; {
		if time.Since(start) > 2*time.Minute {
			out, _ := b.hpctl(b.admins["olivia"], "fleet", "rollout", "show", id)
			t.Fatalf("rollout %s neither completed nor halted in 2 minutes:\n%s", id, out)
		}
		step()
		out, err := b.hpctl(b.admins["vera"], "fleet", "rollout", "show", id, "--json")
		if err != nil {
			t.Fatalf("hpctl fleet rollout show: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("show output: %v", err)
		}
		if v.State == "completed" || v.State == "halted" {
			return &v
		}
		time.Sleep(200 * time.Millisecond) // hpfleet's loop runs every second
	}
}

// firmwareFollower is the phones' side of a firmware rollout: each phone
// named a bundle it does not run installs it, boots and marks it good.
func firmwareFollower(phones []*rollouttest.Phone) func() {
	return func() {
		for _, p := range phones {
			if a, err := p.Assigned(); err == nil && a.Firmware != nil && a.Firmware.Version != p.Running {
				p.Follow(rollouttest.Healthy)
			}
		}
	}
}
