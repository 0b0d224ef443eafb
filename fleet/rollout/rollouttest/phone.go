// Package rollouttest is a simulated fleet phone for tests of rollouts:
// its own TPM (the caller starts an swtpm), a credential store on its own
// state file, attested enrolment through fleet/client, the director's and
// the image repository's metadata through agent/uptane, and check-in
// reports signed by its TPM identity key. What the phone's agent would do
// with what the director names (install, boot, mark good; apply a
// document or revert it by itself) the test plays with Follow.
//
// Imported by tests only (fleet/rollout, cmd/hpfleet).
package rollouttest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/hal/tpm"
)

var ctx = context.Background()

// Config says which fleet the phone joins.
type Config struct {
	// URL, ServerName and Roots reach the fleet server; DeviceCA checks
	// the certificate it issues.
	URL, ServerName string
	Roots           *x509.CertPool
	DeviceCA        *x509.Certificate
	// TPM is the phone's TPM (an swtpm the test started, with an EK
	// certificate of a manufacturer the fleet trusts) and EKCert its DER
	// EK certificate (for the allow-list).
	TPM    *tpm.TPM
	EKCert []byte
	// Admin imports the phone into the allow-list; Group is its group.
	Admin *client.Client
	Group string
	// Serial and Model name the phone.
	Serial, Model string
	// ImageURL and ImageRoot are the vendor's image repository (base URL,
	// pinned root), DirectorRoot the director's pinned root.
	ImageURL                string
	ImageRoot, DirectorRoot []byte
	Compatible              string
	// Clock is the phone's clock (reports' send time, metadata expiry).
	Clock func() time.Time
	// Advance moves the fleet's clock between reports (reports must be
	// sent after each other); nil: wait for the real clock.
	Advance func(time.Duration)
}

// Phone is a simulated phone.
type Phone struct {
	t   testing.TB
	cfg Config
	ID  string
	// Director is what the phone fetches its director metadata through;
	// Replace files to play an attacker or a compromised server.
	Director *ReplaceFetcher
	cs       *credstore.Store
	fc       *client.Client
	up       *uptane.Client
	notAfter time.Time

	// What it runs: the booted firmware version, the other slot's, marked
	// good; uptime; the document versions marked good and reverted.
	Running    string
	Other      string
	OtherGood  bool
	OtherBad   bool // the updater gave up on the other slot
	MarkedGood bool
	Uptime     uint64
	GoodConfig uint64
	Reverted   uint64
}

// ReplaceFetcher can replace what the network delivers.
type ReplaceFetcher struct {
	inner   uptane.Fetcher
	mu      sync.Mutex
	replace map[string][]byte
}

// Replace serves files instead of the network's (nil: the network's
// again).
func (f *ReplaceFetcher) Replace(files map[string][]byte) {
	f.mu.Lock()
	f.replace = files
	f.mu.Unlock()
}

// Fetch implements uptane.Fetcher.
func (f *ReplaceFetcher) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
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

// New puts the phone on the allow-list, enrols it, and reports once
// (running 1.0.0, marked good).
func New(t testing.TB, cfg Config) *Phone {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "hp-desk-1"
	}
	p := &Phone{t: t, cfg: cfg, Running: "1.0.0", MarkedGood: true, Uptime: 100}
	ek := sha256.Sum256(cfg.EKCert)
	if _, err := cfg.Admin.Import(ctx, []api.AllowEntry{{EKSHA256: hex.EncodeToString(ek[:]), Serial: cfg.Serial, Model: cfg.Model, Group: cfg.Group}}); err != nil {
		t.Fatalf("allow-list import: %v", err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	prot, err := credstore.NewTPMProtector(cfg.TPM)
	if err != nil {
		t.Fatalf("NewTPMProtector: %v", err)
	}
	if p.cs, err = credstore.Open(db, prot); err != nil {
		t.Fatalf("credstore.Open: %v", err)
	}
	t.Cleanup(func() { p.cs.Close() })
	if err := p.cs.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	if err := p.cs.CreateSealingKey(false); err != nil {
		t.Fatalf("CreateSealingKey: %v", err)
	}
	ec, err := client.New(client.Config{URL: cfg.URL, ServerName: cfg.ServerName, Roots: cfg.Roots})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	sg, err := p.cs.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	resp, err := ec.Enrol(ctx, attester{p.cs}, sg.Public(), cfg.DeviceCA)
	if err != nil {
		t.Fatalf("Enrol: %v", err)
	}
	if err := p.cs.ImportCertificate(resp.Chain); err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	p.ID, p.notAfter = resp.DeviceID, resp.NotAfter
	if p.fc, err = client.New(client.Config{URL: cfg.URL, ServerName: cfg.ServerName, Roots: cfg.Roots, GetCertificate: p.cs.Identity}); err != nil {
		t.Fatalf("client.New: %v", err)
	}
	dirURL, err := p.fc.DirectorURL(p.ID)
	if err != nil {
		t.Fatalf("DirectorURL: %v", err)
	}
	df, err := uptane.NewHTTPFetcher(p.fc.HTTPClient(), dirURL)
	if err != nil {
		t.Fatalf("NewHTTPFetcher: %v", err)
	}
	p.Director = &ReplaceFetcher{inner: df}
	imf, err := uptane.NewHTTPFetcher(&http.Client{Timeout: 30 * time.Second}, cfg.ImageURL)
	if err != nil {
		t.Fatalf("NewHTTPFetcher: %v", err)
	}
	if p.up, err = uptane.New(db, p.ID, cfg.Clock, uptane.RepoConfig{Root: cfg.ImageRoot, Fetcher: imf},
		uptane.RepoConfig{Root: cfg.DirectorRoot, Fetcher: p.Director}, uptane.WithCompatible(cfg.Compatible)); err != nil {
		t.Fatalf("uptane.New: %v", err)
	}
	p.Report()
	return p
}

// Assigned refreshes the phone's trusted metadata and resolves what the
// director names for it; the refresh's error when it fails (the phone
// keeps what it trusted).
func (p *Phone) Assigned() (*uptane.Assignment, error) {
	if _, err := p.up.Refresh(ctx); err != nil {
		return nil, err
	}
	return p.up.Resolve(p.ID)
}

// Firmware is the version the director names for the phone ("" none).
func (p *Phone) Firmware() string {
	p.t.Helper()
	a, err := p.Assigned()
	if err != nil {
		p.t.Fatalf("phone %s: refresh: %v", p.ID, err)
	}
	if a.Firmware == nil {
		return ""
	}
	return a.Firmware.Version
}

// Report sends a signed check-in report of what the phone runs now.
func (p *Phone) Report() {
	t := p.t
	t.Helper()
	if p.cfg.Advance != nil {
		p.cfg.Advance(time.Second)
	} else {
		time.Sleep(time.Millisecond) // reports must be sent after each other
	}
	p.Uptime += 30
	r := api.Report{DeviceID: p.ID, SentAt: p.cfg.Clock(), Model: p.cfg.Model, Serial: p.cfg.Serial,
		Firmware: api.Firmware{Version: p.Running, SecurityVersion: 4}, Boot: api.Boot{Slot: "A", MarkedGood: p.MarkedGood},
		UptimeSeconds: p.Uptime, Lockdown: api.Lockdown{OK: true}, CertNotAfter: p.notAfter,
		Slots:        []api.Slot{{Name: "A", Version: p.Running, SecurityVersion: 4, Booted: true, Good: p.MarkedGood}},
		Provisioning: &api.Provisioning{ConfigVersion: p.GoodConfig, RevertedVersion: p.Reverted}}
	if p.Other != "" {
		r.Slots = append(r.Slots, api.Slot{Name: "B", Version: p.Other, SecurityVersion: 4, Good: p.OtherGood, Bad: p.OtherBad})
	}
	sg, err := p.cs.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	if _, err := p.fc.CheckIn(ctx, sg, r); err != nil {
		t.Fatalf("phone %s: CheckIn: %v", p.ID, err)
	}
}

// Behaviour is what the phone's agent does with its assignment.
type Behaviour int

// Behaviours.
const (
	// Healthy installs, boots and marks good; applies documents.
	Healthy Behaviour = iota
	// CrashLoop: the new image never boots to good, the bootloader falls
	// back to the old slot.
	CrashLoop
	// BreaksSIP: a new document breaks registration and the phone
	// reverts it by itself.
	BreaksSIP
	// Silent: the phone stops reporting.
	Silent
	// SlowToBoot: installs, never reboots into the new image.
	SlowToBoot
)

func (b Behaviour) String() string {
	return [...]string{"healthy", "crash-loop", "breaks-sip", "silent", "slow-to-boot"}[b]
}

// Follow plays one check-in cycle of the phone's agent: refresh, act on
// what the director names, report.
func (p *Phone) Follow(b Behaviour) {
	t := p.t
	t.Helper()
	if b == Silent {
		return
	}
	a, err := p.Assigned()
	if err != nil {
		t.Fatalf("phone %s: refresh: %v", p.ID, err)
	}
	if f := a.Firmware; f != nil && f.Version != p.Running {
		switch b {
		case Healthy:
			// Install, boot, mark good: a report at each step, as the
			// agent's check-ins would.
			p.Other, p.OtherGood, p.OtherBad = f.Version, false, false
			p.Report()
			p.Other, p.Running, p.MarkedGood, p.Uptime = "1.0.0", f.Version, false, 0
			p.OtherGood = true
			p.Report()
			p.MarkedGood = true
		case CrashLoop:
			// As a real phone: PID 1 reboots as soon as the install
			// is done (no report in between), the new image crashes
			// until the boot count runs out, the bootloader boots the
			// old slot again and the updater marks the new one bad.
			p.Other, p.OtherGood, p.OtherBad = f.Version, false, true
			p.Uptime = 0
		case SlowToBoot:
			p.Other, p.OtherGood, p.OtherBad = f.Version, false, false
		}
	}
	if c := a.Config; c != nil && c.Version > p.GoodConfig && c.Version != p.Reverted {
		if _, err := p.up.FetchConfig(ctx, c); err != nil {
			t.Fatalf("phone %s: FetchConfig: %v", p.ID, err)
		}
		if b == BreaksSIP {
			p.Reverted = c.Version
		} else {
			p.GoodConfig = c.Version
		}
	}
	p.Report()
}

// String names the phone.
func (p *Phone) String() string { return fmt.Sprintf("phone %s (%s)", p.ID, p.cfg.Serial) }
