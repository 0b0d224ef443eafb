package server_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/alert"
	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// The security-monitoring world: the real hpfleet binary (bbolt or
// PostgreSQL) with its director, anomaly detector and both alert sinks
// (Debian's rsyslog over mutual TLS, an HTTPS webhook receiver), and
// phones on their own swtpm, enrolled by attestation, whose event journals
// are signed by their TPM identity key and exported with
// events.FleetExporter over the device's mutual-TLS client.

var bg = context.Background()

const (
	monServerName = "fleet.test"
	monGroup      = "floor-1"
	webhookSecret = "webhook-shared-secret-0123456789"
	// anomalyRules: blocks and quarantines on for premium calls, the
	// probe rule at its default (5 devices within an hour).
	anomalyRules = `{"emergency_numbers": ["112", "911"],
 "rules": {"call.premium": {"block": "25s", "quarantine": "1h"}}}`
)

var (
	monBuildOnce sync.Once
	monBin       string
	monBuildDir  string
)

// monBinary builds cmd/hpfleet once per test binary.
func monBinary(t *testing.T) string {
	t.Helper()
	monBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hpfleet-bin-")
		if err != nil {
			t.Fatalf("MkdirTemp: %v", err)
		}
		monBuildDir = dir
		monBin = test.BuildHPFleet(&dirTB{TB: t, dir: dir})
	})
	if monBin == "" {
		t.Fatalf("hpfleet was not built")
	}
	return monBin
}

// dirTB hands BuildHPFleet a directory that outlives the test that built
// it.
type dirTB struct {
	testing.TB
	dir string
}

func (d *dirTB) TempDir() string { return d.dir }

// webhookSink is the webhook's receiver: an HTTPS server in the test
// that checks each POST's signature and keeps the findings.
type webhookSink struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	got    []anomaly.Finding
	bad    int
}

func newWebhookSink(t *testing.T, dir string) *webhookSink {
	t.Helper()
	s := &webhookSink{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || r.Header.Get(alert.HeaderSignature) != alert.Sign([]byte(webhookSecret), body) {
			s.mu.Lock()
			s.bad++
			s.mu.Unlock()
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		var f anomaly.Finding
		if err := json.Unmarshal(body, &f); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, f)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	s.caFile = filepath.Join(dir, "webhook-ca.pem")
	if err := os.WriteFile(s.caFile, test.PEMCertificate(s.srv.Certificate().Raw), 0o600); err != nil {
		t.Fatalf("write webhook CA: %v", err)
	}
	return s
}

func (s *webhookSink) findings() []anomaly.Finding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]anomaly.Finding(nil), s.got...)
}

// monWorld is one fleet.
type monWorld struct {
	t        *testing.T
	dir, pki string
	roots    *x509.CertPool
	deviceCA *x509.Certificate
	mfg      *test.ManufacturerCA
	admin    *client.Client
	fleets   []*test.HPFleet
	live     int // the replica phones and the admin talk to
	rsys     *test.Rsyslog
	hook     *webhookSink
	args     []string
}

// newMonWorld starts a fleet on backend ("bbolt", or "postgres" with
// replicas hpfleet processes on one database).
func newMonWorld(t *testing.T, backend string, replicas int) *monWorld {
	t.Helper()
	w := &monWorld{t: t, dir: t.TempDir()}
	w.pki = filepath.Join(w.dir, "pki")
	if err := ca.Init(w.pki, ca.InitOptions{Organization: "Acme Phones", ServerNames: []string{monServerName},
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

	// The director's repository: root offline, the others online.
	keyDir := filepath.Join(w.dir, "keys")
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
	droot, dtgt, dsnap, dts := key("root"), key("targets"), key("snap"), key("ts")
	repo := filepath.Join(w.dir, "director")
	dr, err := tufrepo.Init(repo, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: []*tufrepo.Key{droot}, Threshold: 1},
		Targets: tufrepo.RoleKeys{Keys: []*tufrepo.Key{dtgt}, Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: []*tufrepo.Key{dsnap}, Threshold: 1},
		Timestamp: tufrepo.RoleKeys{Keys: []*tufrepo.Key{dts}, Threshold: 1}})
	if err != nil {
		t.Fatalf("tufrepo.Init: %v", err)
	}
	if _, err := dr.Publish(tufrepo.SigningKeys{Snapshot: []*tufrepo.Key{dsnap}, Timestamp: []*tufrepo.Key{dts}}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}

	// The alert sinks.
	spki := test.NewPKI(t, filepath.Join(w.dir, "syslog-pki"))
	w.rsys = test.StartRsyslog(t, spki, "hpfleet-alerts")
	alertCert, alertKey, _ := spki.Client("hpfleet-alerts")
	w.hook = newWebhookSink(t, w.dir)
	rules := filepath.Join(w.dir, "anomaly.json")
	secret := filepath.Join(w.dir, "webhook-secret")
	for p, v := range map[string]string{rules: anomalyRules, secret: webhookSecret} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
	}

	w.args = []string{"--ca-dir", w.pki, "--manufacturer-ca", w.mfg.CertFile, "--log-level", "debug",
		"--director", repo, "--director-targets-key", filepath.Join(keyDir, "targets.pem"),
		"--director-snapshot-key", filepath.Join(keyDir, "snap.pem"), "--director-timestamp-key", filepath.Join(keyDir, "ts.pem"),
		"--password-rotation", "0", "--director-interval", "1s",
		"--anomaly-config", rules, "--anomaly-state-interval", "1s", "--anomaly-poll-interval", "50ms",
		"--alert-syslog", w.rsys.Addr, "--alert-syslog-ca", spki.CAFile, "--alert-syslog-cert", alertCert, "--alert-syslog-key", alertKey,
		"--alert-hostname", "hpfleet-test",
		"--alert-webhook", w.hook.srv.URL + "/findings", "--alert-webhook-ca", w.hook.caFile, "--alert-webhook-secret", "@" + secret}
	switch backend {
	case "bbolt":
		w.args = append(w.args, "--data", filepath.Join(w.dir, "data"))
	case "postgres":
		pg := test.StartPostgres(t)
		dsn := filepath.Join(w.dir, "dsn")
		if err := os.WriteFile(dsn, []byte(pg.DSN), 0o600); err != nil {
			t.Fatalf("write DSN: %v", err)
		}
		w.args = append(w.args, "--postgres", "@"+dsn)
	}
	for range replicas {
		h := test.StartHPFleet(t, monBinary(t), filepath.Join(w.pki, ca.ServerCACertFile), monServerName, w.args...)
		w.fleets = append(w.fleets, h)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("--- hpfleet %s log ---\n%s", h.Addr, h.LogTail())
			}
		})
	}
	w.admin = w.adminOf(w.fleets[0])
	// The group's configuration: one account, its password a credential
	// the phone already holds (the fleet does not manage it here).
	doc := `[[account]]
name = "line1"
user = "1001"
registrar = "127.0.0.1:5061"
domain = "example.test"
password_cred = "sip/line1"
`
	if _, err := w.admin.SetConfig(bg, "group", monGroup, []byte(doc)); err != nil {
		t.Fatalf("SetConfig(group): %v", err)
	}
	return w
}

func (w *monWorld) adminOf(h *test.HPFleet) *client.Client {
	w.t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(w.pki, ca.AdminCertFile), filepath.Join(w.pki, ca.AdminKeyFile))
	if err != nil {
		w.t.Fatalf("admin certificate: %v", err)
	}
	c, err := client.New(client.Config{URL: h.URL, ServerName: monServerName, Roots: w.roots, Certificate: &cert})
	if err != nil {
		w.t.Fatalf("client.New: %v", err)
	}
	w.t.Cleanup(c.CloseIdleConnections)
	return c
}

// monPhone is a phone: its swtpm, state file, credential store with the
// TPM identity, fleet client, event journal and exporter.
type monPhone struct {
	t     *testing.T
	id    string
	sw    *test.SWTPM
	db    *bolt.DB
	cs    *credstore.Store
	sg    crypto.Signer
	fc    *client.Client
	j     *events.Journal
	exp   *events.FleetExporter
	calls *callList
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

// callList is a phone's call history as the exporter reads it.
type callList struct {
	mu    sync.Mutex
	calls []api.CallRecord
}

func (c *callList) add(r api.CallRecord) {
	c.mu.Lock()
	r.Seq = uint64(len(c.calls) + 1)
	c.calls = append(c.calls, r)
	c.mu.Unlock()
}

func (c *callList) CallsAfter(seq uint64, limit int) ([]api.CallRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []api.CallRecord
	for _, r := range c.calls {
		if r.Seq > seq && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

// newPhone allow-lists, enrols and starts the journal of a phone.
func (w *monWorld) newPhone(t *testing.T, serial string, jopts ...events.JournalOption) *monPhone {
	t.Helper()
	p := &monPhone{t: t, calls: &callList{}}
	p.sw = test.StartSWTPM(t, test.SWTPMWithEK(w.mfg))
	ek := sha256.Sum256(p.sw.EKCertECCP256)
	if _, err := w.admin.Import(bg, []api.AllowEntry{{EKSHA256: hex.EncodeToString(ek[:]), Serial: serial, Model: "hp-desk-1", Group: monGroup}}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	tp, err := tpm.Open(p.sw.Spec)
	if err != nil {
		t.Fatalf("tpm.Open: %v", err)
	}
	t.Cleanup(func() { tp.Close() })
	if p.db, err = bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { p.db.Close() })
	prot, err := credstore.NewTPMProtector(tp)
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
	if p.sg, err = p.cs.Signer(); err != nil {
		t.Fatalf("Signer: %v", err)
	}
	ec, err := client.New(client.Config{URL: w.fleets[w.live].URL, ServerName: monServerName, Roots: w.roots})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	resp, err := ec.Enrol(bg, attester{p.cs}, p.sg.Public(), w.deviceCA)
	if err != nil {
		t.Fatalf("Enrol: %v", err)
	}
	if err := p.cs.ImportCertificate(resp.Chain); err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	p.id = resp.DeviceID
	p.fc = w.deviceClient(t, p, w.fleets[w.live])
	p.open(jopts...)
	return p
}

func (w *monWorld) deviceClient(t *testing.T, p *monPhone, h *test.HPFleet) *client.Client {
	t.Helper()
	fc, err := client.New(client.Config{URL: h.URL, ServerName: monServerName, Roots: w.roots, GetCertificate: p.cs.Identity})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(fc.CloseIdleConnections)
	return fc
}

// open opens the phone's journal (signed by its TPM identity) and its
// fleet exporter.
func (p *monPhone) open(jopts ...events.JournalOption) {
	p.t.Helper()
	var err error
	jopts = append([]events.JournalOption{events.WithCheckpointEvery(8)}, jopts...)
	if p.j, err = events.Open(p.db, p.sg, jopts...); err != nil {
		p.t.Fatalf("events.Open: %v", err)
	}
	if p.exp, err = events.NewFleetExporter(p.j, p.fc, events.WithFleetCalls(p.calls)); err != nil {
		p.t.Fatalf("NewFleetExporter: %v", err)
	}
}

// record writes events through a Recorder (rate limits and all) and waits
// until they are in the journal.
func (p *monPhone) record(evs ...events.Event) {
	p.t.Helper()
	r, err := events.NewRecorder(p.j)
	if err != nil {
		p.t.Fatalf("NewRecorder: %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for _, ev := range evs {
		if err := r.Record(ev); err != nil {
			p.t.Fatalf("Record(%s): %v", ev.Kind, err)
		}
	}
	if err := r.Flush(bg); err != nil {
		p.t.Fatalf("Flush: %v", err)
	}
	cancel()
	<-done
}

// push sends what the fleet does not hold yet.
func (p *monPhone) push() int {
	p.t.Helper()
	n, err := p.exp.PushOnce(bg)
	if err != nil {
		p.t.Fatalf("PushOnce: %v", err)
	}
	return n
}

// raws is the phone's journal from seq from, as stored.
func (p *monPhone) raws(from uint64, n int) [][]byte {
	p.t.Helper()
	recs, err := p.j.List(from, n)
	if err != nil {
		p.t.Fatalf("List: %v", err)
	}
	out := make([][]byte, len(recs))
	for i := range recs {
		out[i] = recs[i].Raw()
	}
	return out
}

// wantCode fails unless err is the fleet's refusal with code.
func wantCode(t *testing.T, what string, err error, code api.Code) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s = %v, want the fleet's %s refusal", what, err, code)
	}
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFinding waits for a finding of rule that done accepts.
func (w *monWorld) waitFinding(t *testing.T, rule string, done func(api.Finding) bool) api.Finding {
	t.Helper()
	var got api.Finding
	eventually(t, 30*time.Second, "finding "+rule, func() error {
		pg, err := w.admin.Findings(bg, client.FindingQuery{Rule: rule, Limit: 100})
		if err != nil {
			return err
		}
		for _, f := range pg.Findings {
			if done(f) {
				got = f
				return nil
			}
		}
		return fmt.Errorf("%d %s findings, none matches yet", len(pg.Findings), rule)
	})
	return got
}
