package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// users of the shared registrar: hardphone accounts and baresip peers.
var users = map[string]string{
	"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw", "mallory": "mallory-pw",
}

// env is one Kamailio (MD5 digest, since baresip 1.0 cannot do SHA-256) with
// its PKI.
type env struct {
	k   *test.Kamailio
	pki *test.PKI
	dir string
	// hostile, when set, is the registrar instead of k.
	hostile *test.HostileRegistrar
}

// newHostileEnv is an env whose registrar is a hostile one (test/
// hostile_registrar.go): the test speaks raw SIP over the phone's flow.
func newHostileEnv(t testing.TB, opts ...test.HostileOption) *env {
	t.Helper()
	dir := t.TempDir()
	pki := test.NewPKI(t, filepath.Join(dir, "pki"))
	return &env{pki: pki, dir: dir, hostile: test.StartHostileRegistrar(t, pki, opts...)}
}

// registrar is the address phones register with.
func (e *env) registrar() string {
	if e.hostile != nil {
		return e.hostile.Addr
	}
	return e.k.Addr()
}

func newEnv(t testing.TB, opts ...test.KamailioOption) *env {
	t.Helper()
	dir := t.TempDir()
	pki := test.NewPKI(t, filepath.Join(dir, "pki"))
	opts = append([]test.KamailioOption{test.KamailioPKI(pki), test.KamailioUsers(users)}, opts...)
	k := test.StartKamailio(t, opts...)
	return &env{k: k, pki: pki, dir: dir}
}

// phoneConf is what a test may change in a hardphone config.
type phoneConf struct {
	user, password   string
	certCN           string // client cert CN; "" = user, "-" = no client cert
	caFile           string // "" = the env CA
	digestMin        string
	mediaSecurity    string
	answer           string
	portMin, portMax int
	extra            string // appended to the account table
	// strictMedia leaves media.allow_peers out: the default refusal of
	// loopback media addresses (the peers here all live on loopback).
	strictMedia bool
	// media is appended to the [media] table.
	media string
	top   string // prepended top-level keys
	// credStore is a credential_store spec: the password comes from the
	// store (password_cred = "sip/USER") and, with certCN "-", so does the
	// TLS identity.
	credStore string
}

type phone struct {
	ph     *system.Phone
	ag     *agent.Agent
	acct   *sip.Account
	cfg    *config.Config
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	events chan sip.Event
}

var portBase = struct {
	sync.Mutex
	next int
}{next: 20000}

func nextPorts() (int, int) {
	portBase.Lock()
	defer portBase.Unlock()
	lo := portBase.next
	portBase.next += 100
	return lo, lo + 99
}

// writeConfig writes a hardphone TOML config for pc and returns its path.
func (e *env) writeConfig(t testing.TB, pc phoneConf) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), pc.user)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pw := pc.password
	if pw == "" {
		pw = users[pc.user]
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := pc.caFile
	if ca == "" {
		ca = e.pki.CAFile
	}
	var tlsKeys string
	switch pc.certCN {
	case "-":
	default:
		cn := pc.certCN
		if cn == "" {
			cn = pc.user
		}
		cert, key, _ := e.pki.Client(cn)
		tlsKeys = fmt.Sprintf("cert_file = %q\nkey_file = %q\n", cert, key)
	}
	if pc.portMin == 0 {
		pc.portMin, pc.portMax = nextPorts()
	}
	var acct strings.Builder
	fmt.Fprintf(&acct, "user = %q\nregistrar = %q\n", pc.user, e.registrar())
	if pc.credStore != "" {
		fmt.Fprintf(&acct, "password_cred = \"sip/%s\"\n", pc.user)
		pc.top += fmt.Sprintf("\ncredential_store = %q\n", pc.credStore)
	} else {
		acct.WriteString("password_file = \"password\"\n")
	}
	fmt.Fprintf(&acct, "retry_base = \"500ms\"\nretry_max = \"2s\"\n")
	// Kamailio here can only offer MD5 when baresip shares it.
	dm := pc.digestMin
	if dm == "" {
		dm = "MD5"
	}
	fmt.Fprintf(&acct, "digest_min = %q\n", dm)
	// The suite's raw-socket peers, SIPp scenarios and baresip speak SDES
	// unless a test says otherwise; "default" writes no key (DTLS-SRTP).
	switch pc.mediaSecurity {
	case "":
		acct.WriteString("media_security = \"sdes\"\n")
	case "default":
	default:
		fmt.Fprintf(&acct, "media_security = %q\n", pc.mediaSecurity)
	}
	if pc.answer != "" {
		fmt.Fprintf(&acct, "answer = %q\n", pc.answer)
	}
	acct.WriteString(pc.extra)
	// Every peer here (Kamailio, baresip, the hostile registrar's callers)
	// lives on loopback, which media refuses by default.
	allow := "allow_peers = [\"127.0.0.0/8\"]\n"
	if pc.strictMedia {
		allow = ""
	}
	body := fmt.Sprintf("%s\ncontrol_socket = \"ctl.sock\"\nstate_dir = \"state\"\n\n[tls]\nca_file = %q\n%s\n[media]\nlocal_ip = \"127.0.0.1\"\nrtp_port_min = %d\nrtp_port_max = %d\n%s%s\n[[account]]\n%s",
		pc.top, ca, tlsKeys, pc.portMin, pc.portMax, allow, pc.media, acct.String())
	path := filepath.Join(dir, "hardphone.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPhone runs an in-process agent for pc until the test ends.
func (e *env) startPhone(t testing.TB, pc phoneConf, inbound sip.Inbound) *phone {
	t.Helper()
	return startPhoneFrom(t, e.writeConfig(t, pc), inbound)
}

// startPhoneFrom runs an in-process agent from a config file.
func startPhoneFrom(t testing.TB, path string, inbound sip.Inbound) *phone {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	logFile, err := os.Create(filepath.Join(filepath.Dir(path), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := &phone{cfg: cfg, dir: filepath.Dir(path), done: make(chan struct{}), events: make(chan sip.Event, 64)}
	if p.ph, err = system.Open(cfg, log); err != nil {
		t.Fatalf("system.Open: %v", err)
	}
	p.ag, err = p.ph.Agent(system.Daemon, "test", agent.WithEventWatcher(func(ev sip.Event) {
		select {
		case p.events <- ev:
		default:
		}
	}))
	if err != nil {
		p.ph.Close()
		t.Fatalf("system Agent: %v", err)
	}
	p.acct = p.ag.Accounts()[0]
	if inbound != nil {
		p.acct.SetInbound(inbound)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		if err := p.ag.Run(ctx); err != nil {
			t.Errorf("agent.Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if err := p.ph.Close(); err != nil {
			t.Errorf("close phone: %v", err)
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("--- agent %s log (tail) ---\n%s", path, tail(string(b), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitEvent waits for an event of kind, failing the test after timeout.
func (p *phone) waitEvent(t testing.TB, kind sip.EventKind, timeout time.Duration) sip.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-p.events:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %q event within %v; status %+v", kind, timeout, p.acct.Status())
			return sip.Event{}
		}
	}
}

func (p *phone) waitRegistered(t testing.TB) {
	t.Helper()
	if p.acct.Registered() {
		return
	}
	p.waitEvent(t, sip.EventRegistered, 10*time.Second)
}

// waitLastError waits until the account reports a registration error
// containing want.
func (p *phone) waitLastError(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st := p.acct.Status()
		if st.Registered {
			t.Fatalf("account registered, want refusal containing %q", want)
		}
		if strings.Contains(st.LastError, want) {
			return st.LastError
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("last error = %q, want one containing %q", p.acct.Status().LastError, want)
	return ""
}
