package rollout_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/adminauth/pgauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/boltaudit"
	"github.com/hardphone/hardphone/fleet/audit/pgaudit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/rollout/rollouttest"
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

// postgres starts a PostgreSQL server for one test (each world has its own
// database on it).
func postgres(t *testing.T) *test.Postgres { return test.StartPostgres(t) }

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

// phone is a simulated phone (rollouttest) with its own swtpm.
type phone = rollouttest.Phone

type behaviour = rollouttest.Behaviour

const (
	healthy    = rollouttest.Healthy
	crashLoop  = rollouttest.CrashLoop
	breaksSIP  = rollouttest.BreaksSIP
	silent     = rollouttest.Silent
	slowToBoot = rollouttest.SlowToBoot
)

// newPhone makes a phone of group with its own swtpm, enrolled.
func (w *world) newPhone(group string) *phone {
	t := w.t
	t.Helper()
	w.serial++
	sw := test.StartSWTPM(t, test.SWTPMWithEK(w.mfg))
	tp, err := tpm.Open(sw.Spec)
	if err != nil {
		t.Fatalf("tpm.Open: %v", err)
	}
	t.Cleanup(func() { tp.Close() })
	return rollouttest.New(t, rollouttest.Config{URL: w.url, ServerName: serverName, Roots: w.roots, DeviceCA: w.deviceCA,
		TPM: tp, EKCert: sw.EKCertECCP256, Admin: w.admins["admin"], Group: group, Serial: fmt.Sprintf("SN-%04d", w.serial),
		ImageURL: w.imgURL, ImageRoot: w.imgRoot, DirectorRoot: w.dirRoot, Compatible: testCompatible, Clock: w.clock.Now,
		Advance: w.clock.Add})
}
