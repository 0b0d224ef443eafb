package rollout_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/adminauth/pgauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/boltaudit"
	"github.com/hardphone/hardphone/fleet/audit/pgaudit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/server"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

var ctx = context.Background()

const (
	serverName     = "fleet.test"
	testCompatible = "hardphone-test-board"
	// userAgent is what hpctl sends; sessions are bound to it.
	userAgent = "hpctl-console/1"
)

// clock is the fleet's clock: real time plus an offset the test moves
// forward (deadlines without waiting; certificates and EK chains still
// check at about the real time).
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// worldOpts picks the backend and the director's targets threshold.
type worldOpts struct {
	backend string // "bbolt" or "postgres"
	// approvers is the number of admins' keys the director root lists for
	// targets beside the online key; threshold the targets threshold.
	approvers, threshold int
}

// world is a fleet: hpfleet's server, director, rollout engine and audit
// log in this process over a real store, its HTTPS API on loopback, the
// vendor's image repository on nginx, admins with sessions, and phones,
// each with its own swtpm.
type world struct {
	t        *testing.T
	dir      string
	pki      string
	clock    *clock
	roots    *x509.CertPool
	deviceCA *x509.Certificate
	adminCA  *ca.CA
	mfg      *test.ManufacturerCA
	url      string

	st      store.Store
	dirSvc  *director.Service
	tdir    *tufrepo.Director
	engine  *rollout.Engine
	auditL  *audit.Log
	auditK  *audit.Key
	auth    *adminauth.Authenticator
	pgPool  *test.Postgres
	pgDSN   string
	keyDir  string
	apKeys  []*tufrepo.Key // approvers' keys, listed in the director root
	ngx     *test.StaticNginx
	image   *tufrepo.Repo
	imgURL  string
	imgRoot []byte
	imgTgt  []*tufrepo.Key
	imgOn   tufrepo.SigningKeys
	upki    *test.UpdatePKI
	bundles map[string]string // version -> file
	dirRoot []byte

	admins map[string]*client.Client
	serial int
}

func genKeys(t *testing.T, dir, prefix string, n int) []*tufrepo.Key {
	t.Helper()
	var ks []*tufrepo.Key
	for i := 0; i < n; i++ {
		k, err := tufrepo.GenerateKey(filepath.Join(dir, fmt.Sprintf("%s-%d.pem", prefix, i)), tufrepo.AlgECDSAP256)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		ks = append(ks, k)
	}
	return ks
}

var (
	pgOnce   sync.Once
	pgServer *test.Postgres
)

// postgres is one PostgreSQL server for the test binary, stopped when the
// first test that asked for it ends (each world has its own database).
func postgres(t *testing.T) *test.Postgres {
	pgOnce.Do(func() { pgServer = test.StartPostgres(t) })
	return pgServer
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), clock: &clock{}, admins: map[string]*client.Client{},
		bundles: map[string]string{}}
	w.pki = filepath.Join(w.dir, "pki")
	if err := ca.Init(w.pki, ca.InitOptions{Organization: "Acme Phones", ServerNames: []string{serverName},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin"}); err != nil {
		t.Fatalf("ca.Init: %v", err)
	}
	var err error
	if w.roots, err = ca.LoadPool(filepath.Join(w.pki, ca.ServerCACertFile)); err != nil {
		t.Fatalf("LoadPool: %v", err)
	}
	if w.deviceCA, err = ca.LoadCertificate(filepath.Join(w.pki, ca.DeviceCACertFile)); err != nil {
		t.Fatalf("LoadCertificate: %v", err)
	}
	if w.adminCA, err = ca.Load(filepath.Join(w.pki, ca.AdminCACertFile), filepath.Join(w.pki, ca.AdminCAKeyFile)); err != nil {
		t.Fatalf("admin CA: %v", err)
	}
	w.mfg = test.NewManufacturerCA(t, filepath.Join(w.dir, "mfg"))
	w.keyDir = filepath.Join(w.dir, "keys")
	if err := os.Mkdir(w.keyDir, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}

	// The vendor's image repository on nginx, with two bundles.
	w.ngx = test.StartStaticNginx(t)
	imgDir := filepath.Join(w.ngx.Root, "image")
	root, tgt, snap, ts := genKeys(t, w.keyDir, "image-root", 1), genKeys(t, w.keyDir, "image-targets", 1), genKeys(t, w.keyDir, "image-snap", 1), genKeys(t, w.keyDir, "image-ts", 1)
	if w.image, err = tufrepo.Init(imgDir, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: root, Threshold: 1},
		Targets: tufrepo.RoleKeys{Keys: tgt, Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: snap, Threshold: 1},
		Timestamp: tufrepo.RoleKeys{Keys: ts, Threshold: 1}}); err != nil {
		t.Fatalf("image Init: %v", err)
	}
	w.imgTgt, w.imgOn = tgt, tufrepo.SigningKeys{Snapshot: snap, Timestamp: ts}
	if _, err := w.image.Publish(w.imgOn); err != nil {
		t.Fatalf("image Publish: %v", err)
	}
	w.imgURL = w.ngx.URL + "/image/public/"
	if w.imgRoot, err = os.ReadFile(filepath.Join(imgDir, "public", "1.root.json")); err != nil {
		t.Fatalf("image root: %v", err)
	}
	w.upki = test.NewUpdatePKI(t, filepath.Join(w.dir, "update-pki"))
	for _, v := range []string{"2.0.0", "3.0.0"} {
		w.addBundle(v)
	}

	// The director's root: root key offline; targets: the online key and
	// the approvers' keys, at the threshold asked for.
	dirRepo := filepath.Join(w.dir, "director-root")
	droot, dtgt, dsnap, dts := genKeys(t, w.keyDir, "dir-root", 1), genKeys(t, w.keyDir, "dir-targets", 1), genKeys(t, w.keyDir, "dir-snap", 1), genKeys(t, w.keyDir, "dir-ts", 1)
	w.apKeys = genKeys(t, w.keyDir, "approver", o.approvers)
	th := o.threshold
	if th == 0 {
		th = 1
	}
	dr, err := tufrepo.Init(dirRepo, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: droot, Threshold: 1},
		Targets:  tufrepo.RoleKeys{Keys: append(append([]*tufrepo.Key{}, dtgt...), w.apKeys...), Threshold: th},
		Snapshot: tufrepo.RoleKeys{Keys: dsnap, Threshold: 1}, Timestamp: tufrepo.RoleKeys{Keys: dts, Threshold: 1}})
	if err != nil {
		t.Fatalf("director Init: %v", err)
	}
	// The root repository's own targets (unused by devices) need the
	// threshold too: the approvers sign it once, offline.
	for _, k := range append(append([]*tufrepo.Key{}, dtgt...), w.apKeys...) {
		if err := dr.Sign(tufrepo.RoleTargets, k); err != nil {
			t.Fatalf("director root Sign: %v", err)
		}
	}
	if _, err := dr.Publish(tufrepo.SigningKeys{Snapshot: dsnap, Timestamp: dts}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}
	if w.dirRoot, err = os.ReadFile(filepath.Join(dirRepo, "public", "1.root.json")); err != nil {
		t.Fatalf("director root: %v", err)
	}
	if w.tdir, err = tufrepo.OpenDirector(dirRepo, tufrepo.OnlineKeys{Targets: dtgt, Snapshot: dsnap, Timestamp: dts}, tufrepo.WithClock(w.clock.Now)); err != nil {
		t.Fatalf("OpenDirector: %v", err)
	}

	// The stores: fleet, admins' sessions, audit log.
	var authStore adminauth.Store
	var auditStore audit.Storage
	switch o.backend {
	case "bbolt":
		bs, err := boltstore.Open(filepath.Join(w.dir, "data"))
		if err != nil {
			t.Fatalf("boltstore.Open: %v", err)
		}
		t.Cleanup(func() { bs.Close() })
		w.st = bs
		as, err := boltauth.Open(filepath.Join(w.dir, "data", "adminauth"))
		if err != nil {
			t.Fatalf("boltauth.Open: %v", err)
		}
		t.Cleanup(func() { as.Close() })
		authStore = as
		aus, err := boltaudit.Open(filepath.Join(w.dir, "data", "audit"))
		if err != nil {
			t.Fatalf("boltaudit.Open: %v", err)
		}
		t.Cleanup(func() { aus.Close() })
		auditStore = aus
	case "postgres":
		w.pgPool = postgres(t)
		w.pgDSN = w.pgPool.NewDatabase(t)
		ps, err := pgstore.Open(ctx, w.pgDSN)
		if err != nil {
			t.Fatalf("pgstore.Open: %v", err)
		}
		t.Cleanup(func() { ps.Close() })
		w.st = ps
		if authStore, err = pgauth.New(ctx, ps.Pool()); err != nil {
			t.Fatalf("pgauth.New: %v", err)
		}
		if auditStore, err = pgaudit.New(ctx, ps.Pool()); err != nil {
			t.Fatalf("pgaudit.New: %v", err)
		}
	default:
		t.Fatalf("backend %q", o.backend)
	}
	skey, _, err := audit.GenerateKey(serverName + "/audit")
	if err != nil {
		t.Fatalf("audit key: %v", err)
	}
	akey, err := audit.ParseKey(skey)
	if err != nil {
		t.Fatalf("audit key: %v", err)
	}
	w.auditK = akey
	if w.auditL, err = audit.New(auditStore, akey); err != nil {
		t.Fatalf("audit.New: %v", err)
	}
	cheap, err := adminauth.NewHasher(adminauth.Params{Memory: 8 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	if w.auth, err = adminauth.New(authStore, adminauth.WithHasher(cheap), adminauth.WithLifetimes(time.Hour, 8*time.Hour, 5*time.Minute, time.Hour)); err != nil {
		t.Fatalf("adminauth.New: %v", err)
	}

	// The director, the engine, the server.
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	img, err := director.NewImageRepo(w.imgURL, w.imgRoot, &http.Client{Timeout: 30 * time.Second}, log, w.clock.Now)
	if err != nil {
		t.Fatalf("NewImageRepo: %v", err)
	}
	if w.dirSvc, err = director.New(director.Config{Store: w.st, Director: w.tdir, Image: img}, director.WithClock(w.clock.Now),
		director.WithRotation(0), director.WithLogger(log)); err != nil {
		t.Fatalf("director.New: %v", err)
	}
	if w.engine, err = rollout.New(rollout.Config{Store: w.st.(rollout.Store), Director: w.dirSvc, Audit: w.auditL},
		rollout.WithClock(w.clock.Now), rollout.WithLogger(log)); err != nil {
		t.Fatalf("rollout.New: %v", err)
	}
	w.dirSvc.SetOverrides(w.engine)
	cert, err := tls.LoadX509KeyPair(filepath.Join(w.pki, ca.ServerCertFile), filepath.Join(w.pki, ca.ServerKeyFile))
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	devCA, err := ca.Load(filepath.Join(w.pki, ca.DeviceCACertFile), filepath.Join(w.pki, ca.DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("device CA: %v", err)
	}
	mfgRoot, err := ca.LoadCertificate(w.mfg.CertFile)
	if err != nil {
		t.Fatalf("manufacturer CA: %v", err)
	}
	srv, err := server.New(server.Config{Store: w.st, DeviceCA: devCA, ManufacturerRoots: []*x509.Certificate{mfgRoot},
		AdminCAs: []*x509.Certificate{w.adminCA.Certificate()}, Certificate: &cert, Director: w.dirSvc, Rollouts: w.engine,
		AdminAuth: w.auth, Audit: w.auditL, FleetName: serverName}, server.WithClock(w.clock.Now), server.WithLogger(log))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(sctx, ln) }()
	t.Cleanup(func() { stop(); <-done })
	w.url = "https://" + ln.Addr().String()
	// The first admin (its certificate made by ca.Init) imports phones.
	w.admin("admin", adminauth.RoleSecurityAdmin)
	return w
}

// testWriter sends the server's warnings to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// addBundle makes a signed bundle of version v and lists it in the image
// repository as hardphone-V.raucb.
func (w *world) addBundle(v string) {
	t := w.t
	t.Helper()
	dir := filepath.Join(w.dir, "bundle-"+v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	img := filepath.Join(dir, "rootfs.img")
	b := make([]byte, 16<<10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatalf("image: %v", err)
	}
	out := filepath.Join(dir, "hardphone-"+v+".raucb")
	m := &bundle.Manifest{Compatible: testCompatible, Version: v, SecurityVersion: 4, HasSecurityVersion: true,
		Images: []bundle.Image{{SlotClass: "rootfs", Filename: "rootfs.img"}}}
	if err := bundle.Create(ctx, out, m, map[string]string{"rootfs.img": img}, bundle.Signer{Cert: w.upki.Leaf.Cert, Key: w.upki.Leaf.Key}); err != nil {
		t.Fatalf("bundle.Create: %v", err)
	}
	kr, err := bundle.LoadKeyring(w.upki.CA.CertFile)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	if _, err := w.image.AddBundle(out, "hardphone-"+v+".raucb", kr, w.imgTgt); err != nil {
		t.Fatalf("AddBundle: %v", err)
	}
	if _, err := w.image.Publish(w.imgOn); err != nil {
		t.Fatalf("image Publish: %v", err)
	}
	w.bundles[v] = out
}

// admin makes an admin with a role, a TOTP second factor, a client
// certificate of the admin CA naming it, and a session; it returns the
// admin's API client (as hpctl would be, with --session).
func (w *world) admin(name string, role adminauth.Role) *client.Client {
	t := w.t
	t.Helper()
	pw := "correct horse battery " + name
	if _, err := w.auth.CreateAdmin(ctx, name, pw, role); err != nil {
		t.Fatalf("CreateAdmin(%s): %v", name, err)
	}
	c := adminauth.Client{Addr: netip.MustParseAddr("127.0.0.1"), UserAgent: userAgent}
	res, err := w.auth.Login(ctx, name, pw, c)
	if err != nil {
		t.Fatalf("Login(%s): %v", name, err)
	}
	en, err := w.auth.BeginTOTPEnrolment(ctx, res.Token, c)
	if err != nil {
		t.Fatalf("BeginTOTPEnrolment(%s): %v", name, err)
	}
	tok, err := w.auth.FinishTOTPEnrolment(ctx, res.Token, authtest.Code(t, en.Secret, time.Now()), c)
	if err != nil {
		t.Fatalf("FinishTOTPEnrolment(%s): %v", name, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	der, err := w.adminCA.IssueAdmin(key.Public(), name, time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatalf("IssueAdmin(%s): %v", name, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	cert, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatalf("admin certificate: %v", err)
	}
	base, err := client.New(client.Config{URL: w.url, ServerName: serverName, Roots: w.roots, Certificate: &cert})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	cl, err := base.WithSession(tok, userAgent)
	if err != nil {
		t.Fatalf("WithSession: %v", err)
	}
	w.admins[name] = cl
	return cl
}

// phone is a simulated phone: its own swtpm, a credential store on its
// state file, enrolled through fleet/client, following the director with
// agent/uptane, and sending reports signed by its TPM identity key. What
// its agent would do with what the director names (install, boot, mark
// good; apply a document or revert it) the test plays (behave).
type phone struct {
	w      *world
	serial string
	sw     *test.SWTPM
	tpm    *tpm.TPM
	db     *bolt.DB
	cs     *credstore.Store
	id     string
	fc     *client.Client
	up     *uptane.Client
	dirF   *replaceFetcher

	notAfter time.Time
	// What it runs.
	running    string // firmware version booted
	other      string // the other slot's version ("" none)
	otherGood  bool
	markedGood bool
	uptime     uint64
	goodConfig uint64
	reverted   uint64
}

// replaceFetcher can replace what the network delivers (an attacker on
// the path, or a compromised server's own files).
type replaceFetcher struct {
	inner   uptane.Fetcher
	mu      sync.Mutex
	replace map[string][]byte
}

func (f *replaceFetcher) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	f.mu.Lock()
	rep := f.replace[name]
	f.mu.Unlock()
	if rep != nil {
		return append([]byte(nil), rep...), nil
	}
	return f.inner.Fetch(ctx, name, max)
}

// attester is the phone's side of attested enrolment.
type attester struct{ cs *credstore.Store }

func (a attester) Attest(context.Context) (*client.Attestation, error) {
	at, err := a.cs.IdentityAttestation(tpm.EKECCP256)
	if err != nil {
		return nil, err
	}
	csr, err := a.cs.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		return nil, err
	}
	return &client.Attestation{EKType: api.EKTypeECCP256, EKCert: at.EKCertificate, IdentityPublic: at.IdentityPublic, CSR: csr}, nil
}

func (a attester) Activate(_ context.Context, _ string, blob, enc []byte) (api.Secret, error) {
	s, err := a.cs.ActivateCredential(tpm.EKECCP256, blob, enc)
	return api.Secret(s), err
}

func (a attester) SealingPublic(context.Context) ([]byte, error) {
	sa, err := a.cs.SealingAttestation()
	if err != nil {
		return nil, err
	}
	return sa.Public, nil
}

func (a attester) ActivateSealing(_ context.Context, _ string, blob, enc []byte) (api.Secret, error) {
	s, err := a.cs.ActivateSealingCredential(tpm.EKECCP256, blob, enc)
	return api.Secret(s), err
}

// newPhone makes a phone of group (its TPM on the allow-list), enrols it,
// and reports once (running 1.0.0, marked good).
func (w *world) newPhone(group string) *phone {
	t := w.t
	t.Helper()
	w.serial++
	p := &phone{w: w, serial: fmt.Sprintf("SN-%04d", w.serial), running: "1.0.0", markedGood: true, uptime: 100}
	p.sw = test.StartSWTPM(t, test.SWTPMWithEK(w.mfg))
	ek := sha256.Sum256(p.sw.EKCertECCP256)
	if _, err := w.admins["admin"].Import(ctx, []api.AllowEntry{{EKSHA256: hex.EncodeToString(ek[:]), Serial: p.serial, Model: "hp-desk-1", Group: group}}); err != nil {
		t.Fatalf("allow-list import: %v", err)
	}
	var err error
	if p.tpm, err = tpm.Open(p.sw.Spec); err != nil {
		t.Fatalf("tpm.Open: %v", err)
	}
	t.Cleanup(func() { p.tpm.Close() })
	if p.db, err = bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { p.db.Close() })
	prot, err := credstore.NewTPMProtector(p.tpm)
	if err != nil {
		t.Fatalf("NewTPMProtector: %v", err)
	}
	if p.cs, err = credstore.Open(p.db, prot); err != nil {
		t.Fatalf("credstore.Open: %v", err)
	}
	t.Cleanup(func() { p.cs.Close() })
	if err := p.cs.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	if err := p.cs.CreateSealingKey(false); err != nil {
		t.Fatalf("CreateSealingKey: %v", err)
	}
	ec, err := client.New(client.Config{URL: w.url, ServerName: serverName, Roots: w.roots})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	sg, err := p.cs.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	resp, err := ec.Enrol(ctx, attester{p.cs}, sg.Public(), w.deviceCA)
	if err != nil {
		t.Fatalf("Enrol: %v", err)
	}
	if err := p.cs.ImportCertificate(resp.Chain); err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	p.id, p.notAfter = resp.DeviceID, resp.NotAfter
	if p.fc, err = client.New(client.Config{URL: w.url, ServerName: serverName, Roots: w.roots, GetCertificate: p.cs.Identity}); err != nil {
		t.Fatalf("client.New: %v", err)
	}
	dirURL, err := p.fc.DirectorURL(p.id)
	if err != nil {
		t.Fatalf("DirectorURL: %v", err)
	}
	df, err := uptane.NewHTTPFetcher(p.fc.HTTPClient(), dirURL)
	if err != nil {
		t.Fatalf("NewHTTPFetcher: %v", err)
	}
	p.dirF = &replaceFetcher{inner: df, replace: map[string][]byte{}}
	imf, err := uptane.NewHTTPFetcher(&http.Client{Timeout: 30 * time.Second}, w.imgURL)
	if err != nil {
		t.Fatalf("NewHTTPFetcher: %v", err)
	}
	if p.up, err = uptane.New(p.db, p.id, w.clock.Now, uptane.RepoConfig{Root: w.imgRoot, Fetcher: imf},
		uptane.RepoConfig{Root: w.dirRoot, Fetcher: p.dirF}, uptane.WithCompatible(testCompatible)); err != nil {
		t.Fatalf("uptane.New: %v", err)
	}
	p.report()
	return p
}

// assigned refreshes the phone's trusted metadata and resolves what the
// director names for it (nil when the refresh fails: the error too).
func (p *phone) assigned() (*uptane.Assignment, error) {
	if _, err := p.up.Refresh(ctx); err != nil {
		return nil, err
	}
	return p.up.Resolve(p.id)
}

// report sends a signed check-in report of what the phone runs now.
func (p *phone) report() {
	t := p.w.t
	t.Helper()
	p.w.clock.Add(time.Second) // reports are ordered by their send time
	p.uptime += 30
	r := api.Report{DeviceID: p.id, SentAt: p.w.clock.Now(), Model: "hp-desk-1", Serial: p.serial,
		Firmware: api.Firmware{Version: p.running, SecurityVersion: 4}, Boot: api.Boot{Slot: "A", MarkedGood: p.markedGood},
		UptimeSeconds: p.uptime, Lockdown: api.Lockdown{OK: true}, CertNotAfter: p.notAfter,
		Slots:        []api.Slot{{Name: "A", Version: p.running, SecurityVersion: 4, Booted: true, Good: p.markedGood}},
		Provisioning: &api.Provisioning{ConfigVersion: p.goodConfig, RevertedVersion: p.reverted}}
	if p.other != "" {
		r.Slots = append(r.Slots, api.Slot{Name: "B", Version: p.other, SecurityVersion: 4, Good: p.otherGood})
	}
	sg, err := p.cs.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	if _, err := p.fc.CheckIn(ctx, sg, r); err != nil {
		t.Fatalf("phone %s: CheckIn: %v", p.id, err)
	}
}

// behaviour is what the phone's agent does with its assignment.
type behaviour int

const (
	healthy    behaviour = iota
	crashLoop            // the new image never boots to good: the bootloader falls back
	breaksSIP            // a new document breaks registration: the phone reverts it
	silent               // the phone stops reporting
	slowToBoot           // installs, never reboots into it (waits)
)

// follow plays one check-in cycle of the phone's agent: refresh, act on
// what the director names, report.
func (p *phone) follow(b behaviour) {
	t := p.w.t
	t.Helper()
	if b == silent {
		return
	}
	a, err := p.assigned()
	if err != nil {
		t.Fatalf("phone %s: refresh: %v", p.id, err)
	}
	if f := a.Firmware; f != nil && f.Version != p.running {
		switch b {
		case healthy:
			// Install, boot, mark good: three reports as the agent
			// would send at its check-ins.
			p.other, p.otherGood = f.Version, false
			p.report()
			p.other, p.running, p.markedGood, p.uptime = "1.0.0", f.Version, false, 0
			p.otherGood = true
			p.report()
			p.markedGood = true
		case crashLoop:
			p.other, p.otherGood = f.Version, false
			p.report()
			// Reboot: the new image crashes until the boot count runs
			// out and the bootloader boots the old slot again.
			p.uptime = 0
		case slowToBoot:
			p.other, p.otherGood = f.Version, false
		}
	}
	if c := a.Config; c != nil && c.Version > p.goodConfig && c.Version != p.reverted {
		if _, err := p.up.FetchConfig(ctx, c); err != nil {
			t.Fatalf("phone %s: FetchConfig: %v", p.id, err)
		}
		switch b {
		case breaksSIP:
			p.reverted = c.Version
		default:
			p.goodConfig = c.Version
		}
	}
	p.report()
}
