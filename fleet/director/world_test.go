package director_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

var ctx = context.Background()

const (
	serverName     = "fleet.test"
	sipDomain      = "example.test"
	testCompatible = "hardphone-test-board"
	group          = "floor-1"
)

// clock is a phone's settable clock (the time floor's stand-in).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// world is a fleet: hpfleet with its director, the vendor's image
// repository on nginx, a registrar (Kamailio on PostgreSQL), an admin.
type world struct {
	t        *testing.T
	dir      string
	pki      string
	roots    *x509.CertPool
	deviceCA *x509.Certificate
	admin    *client.Client
	mfg      *test.ManufacturerCA
	pg       *test.Postgres
	kam      *test.Kamailio

	ngx        *test.StaticNginx
	image      *tufrepo.Repo
	imageURL   string
	imageRoot  []byte
	imageTgt   []*tufrepo.Key
	imageOn    tufrepo.SigningKeys
	bundleKR   *bundle.Keyring
	dirRoot    []byte
	fleet      *test.HPFleet
	serialSeq  int
	bundleFile string
}

var (
	buildOnce  sync.Once
	hpfleetBin string
	buildErr   error
)

// hpfleetBinary builds cmd/hpfleet once for the test binary.
func hpfleetBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hpfleet-bin-")
		if err != nil {
			buildErr = err
			return
		}
		hpfleetBin = test.BuildHPFleet(&onceTB{TB: t, dir: dir})
	})
	if buildErr != nil || hpfleetBin == "" {
		t.Fatalf("build hpfleet: %v", buildErr)
	}
	return hpfleetBin
}

// onceTB hands BuildHPFleet a temporary directory that outlives the test
// that happened to build it.
type onceTB struct {
	testing.TB
	dir string
}

func (o *onceTB) TempDir() string { return o.dir }

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

// newWorld starts everything; backend is "bbolt" or "postgres" (hpfleet's
// store).
func newWorld(t *testing.T, backend string, extra ...string) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
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
	w.mfg = test.NewManufacturerCA(t, filepath.Join(w.dir, "mfg"))
	keyDir := filepath.Join(w.dir, "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}

	// The vendor's image repository, served by nginx, with one bundle.
	w.ngx = test.StartStaticNginx(t)
	imgDir := filepath.Join(w.ngx.Root, "image")
	root, tgt, snap, ts := genKeys(t, keyDir, "image-root", 1), genKeys(t, keyDir, "image-targets", 1), genKeys(t, keyDir, "image-snap", 1), genKeys(t, keyDir, "image-ts", 1)
	w.image, err = tufrepo.Init(imgDir, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: root, Threshold: 1},
		Targets: tufrepo.RoleKeys{Keys: tgt, Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: snap, Threshold: 1},
		Timestamp: tufrepo.RoleKeys{Keys: ts, Threshold: 1}})
	if err != nil {
		t.Fatalf("image Init: %v", err)
	}
	w.imageTgt, w.imageOn = tgt, tufrepo.SigningKeys{Snapshot: snap, Timestamp: ts}
	if _, err := w.image.Publish(w.imageOn); err != nil {
		t.Fatalf("image Publish: %v", err)
	}
	w.imageURL = w.ngx.URL + "/image/public/"
	if w.imageRoot, err = os.ReadFile(filepath.Join(imgDir, "public", "1.root.json")); err != nil {
		t.Fatalf("image root: %v", err)
	}
	upki := test.NewUpdatePKI(t, filepath.Join(w.dir, "update-pki"))
	if w.bundleKR, err = bundle.LoadKeyring(upki.CA.CertFile); err != nil {
		t.Fatalf("keyring: %v", err)
	}
	w.bundleFile = makeBundle(t, upki, filepath.Join(w.dir, "bundle"), "2.0.0", 4)
	w.addBundle("hardphone-2.0.0.raucb")

	// The director's root repository: root key offline (here, unused
	// after init), targets, snapshot and timestamp online in hpfleet.
	dirRepo := filepath.Join(w.dir, "director-root")
	droot, dtgt, dsnap, dts := genKeys(t, keyDir, "dir-root", 1), genKeys(t, keyDir, "dir-targets", 1), genKeys(t, keyDir, "dir-snap", 1), genKeys(t, keyDir, "dir-ts", 1)
	dr, err := tufrepo.Init(dirRepo, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: droot, Threshold: 1},
		Targets: tufrepo.RoleKeys{Keys: dtgt, Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: dsnap, Threshold: 1},
		Timestamp: tufrepo.RoleKeys{Keys: dts, Threshold: 1}})
	if err != nil {
		t.Fatalf("director Init: %v", err)
	}
	if _, err := dr.Publish(tufrepo.SigningKeys{Snapshot: dsnap, Timestamp: dts}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}
	if w.dirRoot, err = os.ReadFile(filepath.Join(dirRepo, "public", "1.root.json")); err != nil {
		t.Fatalf("director root: %v", err)
	}

	// The registrar: Kamailio authenticating from PostgreSQL.
	w.pg = test.StartPostgres(t, test.PostgresTCP())
	regDSN := w.pg.NewDatabase(t)
	test.KamailioAuthSchema(t, regDSN)
	w.kam = test.StartKamailio(t, test.KamailioPostgresAuth(w.pg.URL(t, regDSN)), test.KamailioPlainPort(0),
		test.KamailioDigestAlgorithm("SHA-256"), test.KamailioRequireClientCert(false), test.KamailioRPC())

	secret := func(name, v string) string {
		p := filepath.Join(w.dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		return "@" + p
	}
	args := []string{"--ca-dir", w.pki, "--manufacturer-ca", w.mfg.CertFile, "--log-level", "debug",
		"--director", dirRepo, "--director-targets-key", filepath.Join(keyDir, "dir-targets-0.pem"),
		"--director-snapshot-key", filepath.Join(keyDir, "dir-snap-0.pem"), "--director-timestamp-key", filepath.Join(keyDir, "dir-ts-0.pem"),
		"--image-url", w.imageURL, "--image-root", filepath.Join(imgDir, "public", "1.root.json"),
		"--registrar-db", secret("registrar-dsn", regDSN), "--registrar-domain", sipDomain, "--registrar-rpc", w.kam.RPCURL(),
		"--password-rotation", "0", "--director-interval", "1s"}
	switch backend {
	case "bbolt":
		args = append(args, "--data", filepath.Join(w.dir, "data"))
	case "postgres":
		args = append(args, "--postgres", secret("store-dsn", w.pg.NewDatabase(t)))
	}
	w.fleet = test.StartHPFleet(t, hpfleetBinary(t), filepath.Join(w.pki, ca.ServerCACertFile), serverName, append(args, extra...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hpfleet log ---\n%s", w.fleet.LogTail())
		}
	})
	cert, err := tls.LoadX509KeyPair(filepath.Join(w.pki, ca.AdminCertFile), filepath.Join(w.pki, ca.AdminKeyFile))
	if err != nil {
		t.Fatalf("admin certificate: %v", err)
	}
	if w.admin, err = client.New(client.Config{URL: w.fleet.URL, ServerName: serverName, Roots: w.roots, Certificate: &cert}); err != nil {
		t.Fatalf("admin client: %v", err)
	}
	return w
}

// makeBundle writes a signed RAUC bundle.
func makeBundle(t *testing.T, pki *test.UpdatePKI, dir, version string, secver uint64) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	img := filepath.Join(dir, "rootfs.img")
	b := make([]byte, 32<<10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatalf("image: %v", err)
	}
	out := filepath.Join(dir, "hardphone-"+version+".raucb")
	m := &bundle.Manifest{Compatible: testCompatible, Version: version, SecurityVersion: secver, HasSecurityVersion: true,
		Images: []bundle.Image{{SlotClass: "rootfs", Filename: "rootfs.img"}}}
	if err := bundle.Create(ctx, out, m, map[string]string{"rootfs.img": img}, bundle.Signer{Cert: pki.Leaf.Cert, Key: pki.Leaf.Key}); err != nil {
		t.Fatalf("bundle.Create: %v", err)
	}
	return out
}

// addBundle lists the bundle in the image repository under name.
func (w *world) addBundle(name string) {
	w.t.Helper()
	if _, err := w.image.AddBundle(w.bundleFile, name, w.bundleKR, w.imageTgt); err != nil {
		w.t.Fatalf("AddBundle: %v", err)
	}
	if _, err := w.image.Publish(w.imageOn); err != nil {
		w.t.Fatalf("image Publish: %v", err)
	}
}

// removeBundle unlists a target from the image repository.
func (w *world) removeBundle(name string) {
	w.t.Helper()
	if err := w.image.RemoveTarget(name, w.imageTgt); err != nil {
		w.t.Fatalf("RemoveTarget: %v", err)
	}
	if _, err := w.image.Publish(w.imageOn); err != nil {
		w.t.Fatalf("image Publish: %v", err)
	}
}

// phone is a simulated phone: its own swtpm, a credential store on its
// state file, enrolled through fleet/client, following the director with
// agent/uptane.
type phone struct {
	t     *testing.T
	sw    *test.SWTPM
	tpm   *tpm.TPM
	db    *bolt.DB
	cs    *credstore.Store
	id    string
	fc    *client.Client
	up    *uptane.Client
	clock *clock
	dirF  *countingFetcher
}

// attester is the phone's side of attested enrolment on its credential
// store (what agent/provision does on the phone).
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

// countingFetcher counts what the phone downloads from the director and
// can replace what the network delivers (an attacker on the path).
type countingFetcher struct {
	inner   uptane.Fetcher
	mu      sync.Mutex
	bytes   int64
	tamper  func(name string, b []byte) []byte
	replace map[string][]byte
}

func (f *countingFetcher) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	f.mu.Lock()
	rep, tamper := f.replace[name], f.tamper
	f.mu.Unlock()
	if rep != nil {
		return append([]byte(nil), rep...), nil
	}
	b, err := f.inner.Fetch(ctx, name, max)
	f.mu.Lock()
	f.bytes += int64(len(b))
	f.mu.Unlock()
	if err == nil && tamper != nil {
		b = tamper(name, b)
	}
	return b, err
}

// newPhone makes a phone (its TPM on the allow-list) and enrols it.
func (w *world) newPhone(serial string) *phone {
	t := w.t
	t.Helper()
	p := &phone{t: t, clock: &clock{t: time.Now()}}
	p.sw = test.StartSWTPM(t, test.SWTPMWithEK(w.mfg))
	ek := sha256.Sum256(p.sw.EKCertECCP256)
	if _, err := w.admin.Import(ctx, []api.AllowEntry{{EKSHA256: hex.EncodeToString(ek[:]), Serial: serial, Model: "hp-desk-1", Group: group}}); err != nil {
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
	ec, err := client.New(client.Config{URL: w.fleet.URL, ServerName: serverName, Roots: w.roots})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	sg, err := p.cs.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	resp, err := ec.Enrol(ctx, attester{p.cs}, sg.Public(), w.deviceCA)
	if err != nil {
		t.Fatalf("Enrol: %v\n%s", err, w.fleet.LogTail())
	}
	if err := p.cs.ImportCertificate(resp.Chain); err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	p.id = resp.DeviceID
	if p.fc, err = client.New(client.Config{URL: w.fleet.URL, ServerName: serverName, Roots: w.roots, GetCertificate: p.cs.Identity}); err != nil {
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
	p.dirF = &countingFetcher{inner: df}
	imf, err := uptane.NewHTTPFetcher(&http.Client{Timeout: 30 * time.Second}, w.imageURL)
	if err != nil {
		t.Fatalf("NewHTTPFetcher: %v", err)
	}
	if p.up, err = uptane.New(p.db, p.id, p.clock.Now, uptane.RepoConfig{Root: w.imageRoot, Fetcher: imf},
		uptane.RepoConfig{Root: w.dirRoot, Fetcher: p.dirF}, uptane.WithCompatible(testCompatible)); err != nil {
		t.Fatalf("uptane.New: %v", err)
	}
	return p
}
