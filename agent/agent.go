package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/lockdown"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/update"
)

// Agent runs every account of one config.
type Agent struct {
	cfg      *config.Config
	log      *slog.Logger
	accounts []*sip.Account
	// lock enforces the lockdown policy; nil when the config names none.
	lock *lockdown.Lockdown
	// creds is the credential store (state file + TPM); nil without one.
	creds *store.Credentials
	// state is the state file when there is no credential store to own it.
	state *store.Store
	// updater is the A/B updater; nil when the config has no [update].
	updater *update.Updater

	mu       sync.Mutex
	watchers []func(sip.Event)
}

// Option configures an Agent.
type Option func(*Agent)

// WithEventWatcher calls f for every account event (registration, calls).
func WithEventWatcher(f func(sip.Event)) Option {
	return func(a *Agent) { a.watchers = append(a.watchers, f) }
}

// New builds an agent from a validated config.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	if log == nil {
		return nil, errors.New("agent: nil logger")
	}
	a := &Agent{cfg: cfg, log: log.With("component", "agent")}
	for _, o := range opts {
		o(a)
	}
	if cfg.LockdownPolicy != "" {
		p, err := lockdown.Load(cfg.LockdownPolicy)
		if err != nil {
			return nil, err
		}
		// Media binds only inside the policy's RTP range: a config that would
		// bind elsewhere is refused here, not discovered as drift later.
		if p.RTP == nil || cfg.Media.PortMin < p.RTP.First || cfg.Media.PortMax > p.RTP.Last {
			return nil, fmt.Errorf("media rtp ports %d-%d are outside the lockdown policy's rtp.ports (%s)",
				cfg.Media.PortMin, cfg.Media.PortMax, rtpRange(p.RTP))
		}
		if a.lock, err = lockdown.New(p, lockdown.WithLogger(log), lockdown.WithPinholeOwner()); err != nil {
			return nil, err
		}
	}
	// Pinholes follow calls: media reports the peer's addresses, the agent
	// tells lockdown. Media never imports lockdown.
	a.watchers = append([]func(sip.Event){a.pinholes}, a.watchers...)
	roots, err := loadRoots(cfg.TLS.CAFile)
	if err != nil {
		a.Close()
		return nil, err
	}
	if cfg.CredentialStore != "" {
		if a.creds, err = store.OpenCredentials(cfg.StateDir, cfg.CredentialStore, log); err != nil {
			a.Close()
			return nil, fmt.Errorf("credential store: %w", err)
		}
	}
	ident, err := a.identity()
	if err != nil {
		a.Close()
		return nil, err
	}
	if cfg.Update.Layout != "" {
		if err := a.openUpdater(); err != nil {
			a.Close()
			return nil, fmt.Errorf("updater: %w", err)
		}
	}
	instance, err := instanceID(cfg.StateDir)
	if err != nil {
		a.Close()
		return nil, err
	}
	mp := sip.MediaParams{LocalIP: cfg.Media.LocalIP, PortMin: cfg.Media.PortMin, PortMax: cfg.Media.PortMax}
	for _, ac := range cfg.Accounts {
		acct, err := sip.NewAccount(ac, sip.AccountDeps{
			Roots: roots, Cert: ident, Password: a.passwordFor(ac), Media: mp, Instance: instance,
			Log: log.With("component", "sip"), Events: a.dispatch,
		})
		if err != nil {
			a.Close()
			return nil, err
		}
		a.accounts = append(a.accounts, acct)
	}
	return a, nil
}

// pinholes opens the firewall for a call's media when its SDP is agreed and
// closes it when the call ends.
func (a *Agent) pinholes(ev sip.Event) {
	if a.lock == nil || ev.Call == nil {
		return
	}
	switch ev.Kind {
	case "media":
		var ports []uint16
		for _, ap := range ev.Call.Media().LocalAddrs() {
			ports = append(ports, ap.Port())
		}
		if err := a.lock.OpenPinhole(ev.Call.ID(), ev.Call.RemoteMedia(), ports...); err != nil {
			// Media from this peer cannot arrive; the call will fail to key
			// and end, which is the safe outcome.
			a.log.Warn("pinhole refused", "call_id", ev.Call.ID(), "error", err)
		}
	case "call_ended":
		if err := a.lock.ClosePinhole(ev.Call.ID()); err != nil {
			a.log.Warn("close pinhole", "call_id", ev.Call.ID(), "error", err)
		}
	}
}

// identity is the mutual-TLS client identity: the key file when the config
// names one, else the credential store's (the TPM key), else none.
func (a *Agent) identity() (*tls.Certificate, error) {
	if a.cfg.TLS.CertFile != "" {
		return loadIdentity(a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile)
	}
	if a.creds == nil {
		return nil, nil
	}
	c, err := a.creds.Identity()
	if err != nil {
		return nil, fmt.Errorf("tls identity from the credential store: %w", err)
	}
	return c, nil
}

// passwordFor returns where an account's digest password comes from.
func (a *Agent) passwordFor(ac config.Account) func() (string, error) {
	if ac.PasswordCred == "" {
		return ac.Password
	}
	return func() (string, error) {
		v, err := a.creds.Get(ac.PasswordCred)
		if err != nil {
			return "", fmt.Errorf("credential %s: %w", ac.PasswordCred, err)
		}
		return string(v), nil
	}
}

// Close releases the credential store and the TPM. Run does not call it, so
// a caller may Run again; the command's main defers it.
func (a *Agent) Close() {
	if a.lock != nil {
		// Rules and pinholes stay in the kernel: the phone stays locked down.
		if err := a.lock.Close(); err != nil {
			a.log.Debug("lockdown close", "error", err)
		}
		a.lock = nil
	}
	if a.state != nil {
		if err := a.state.Close(); err != nil {
			a.log.Warn("close state file", "error", err)
		}
		a.state = nil
	}
	if a.creds != nil {
		if err := a.creds.Close(); err != nil {
			a.log.Warn("close credential store", "error", err)
		}
		a.creds = nil
	}
}

func (a *Agent) dispatch(ev sip.Event) {
	a.mu.Lock()
	ws := append([]func(sip.Event){}, a.watchers...)
	a.mu.Unlock()
	for _, w := range ws {
		w(ev)
	}
}

// Accounts returns the accounts in config order.
func (a *Agent) Accounts() []*sip.Account { return a.accounts }

// Account returns the account named name, or the first for "".
func (a *Agent) Account(name string) (*sip.Account, error) {
	for _, acct := range a.accounts {
		if name == "" || acct.Name() == name {
			return acct, nil
		}
	}
	return nil, fmt.Errorf("no account named %q", name)
}

// Run applies the lockdown policy, starts every account and the control
// socket, and blocks until ctx ends. A policy that cannot be applied stops
// the start: a phone does not run unlocked by accident.
func (a *Agent) Run(ctx context.Context) error {
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	if a.lock != nil {
		plan, err := a.lock.Apply(ctx)
		if err != nil {
			return fmt.Errorf("lockdown: %w", err)
		}
		a.log.Info("lockdown applied", "changes", len(plan.Changes))
		// No call is up yet, so every pinhole in the kernel is a leftover of
		// an agent that died mid-call: close them.
		if _, err := a.lock.ClearPinholes(); err != nil {
			return fmt.Errorf("lockdown: %w", err)
		}
		lc = a.lock.Policy().ListenConfig()
		ticker := time.NewTicker(a.cfg.LockdownCheck)
		defer ticker.Stop()
		go a.lock.Monitor(ctx, ticker.C)
	}
	var wg sync.WaitGroup
	if a.updater != nil {
		a.checkBoot()
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.markGoodWhenHealthy(ctx)
		}()
	}
	for _, acct := range a.accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct.Run(ctx)
		}()
	}
	for _, l := range a.cfg.Listen {
		// Plain listeners serve the first account; they exist only for tests
		// and legacy networks and are off unless configured.
		if err := a.accounts[0].Listen(ctx, &lc, l.Network, l.Addr.String()); err != nil {
			return err
		}
		a.log.Warn("plain SIP listener enabled", "network", l.Network, "addr", l.Addr.String())
	}
	if a.cfg.ControlSocket != "" {
		ln, err := listenControl(a.cfg.ControlSocket)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveControl(ctx, ln)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// Status is the agent-wide snapshot.
type Status struct {
	Accounts []sip.AccountStatus `json:"accounts"`
	Lockdown *LockdownStatus     `json:"lockdown,omitempty"`
	// Credentials is how secrets are protected: "tpm", or "software" with
	// Weaker set, or "none" (files).
	Credentials string `json:"credentials"`
	Weaker      bool   `json:"credentials_weaker,omitempty"`
}

// LockdownStatus says which policy is enforced and how often the periodic
// check found drift.
type LockdownStatus struct {
	Policy      string `json:"policy"`
	DriftEvents uint64 `json:"drift_events"`
}

// Status returns the current status.
func (a *Agent) Status() Status {
	s := Status{Credentials: "none", Weaker: true}
	if a.creds != nil {
		p := a.creds.Protection()
		s.Credentials, s.Weaker = p.String(), p.Weaker()
	}
	if a.lock != nil {
		s.Lockdown = &LockdownStatus{Policy: a.cfg.LockdownPolicy, DriftEvents: a.lock.DriftEvents()}
	}
	for _, acct := range a.accounts {
		s.Accounts = append(s.Accounts, acct.Status())
	}
	return s
}

// instanceID is the RFC 5626 instance URN: stable across restarts when a
// state directory is configured, per process otherwise.
func instanceID(stateDir string) (string, error) {
	if stateDir == "" {
		return "urn:uuid:" + uuid.NewString(), nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	p := filepath.Join(stateDir, "instance-id")
	if b, err := os.ReadFile(p); err == nil {
		if id, err := uuid.ParseBytes([]byte(strings.TrimSpace(string(b)))); err == nil {
			return "urn:uuid:" + id.String(), nil
		}
	}
	id, err := uuid.NewRandomFromReader(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	return "urn:uuid:" + id.String(), nil
}

func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// controlRequest is one line of JSON on the control socket.
type controlRequest struct {
	// Command is "status", "answer", "hangup", "hold", "unhold",
	// "update-status", "update-install" or "update-mark-good".
	Command string `json:"command"`
	Account string `json:"account,omitempty"`
	CallID  string `json:"call_id,omitempty"`
	// Bundle and Force are for update-install: a bundle file on the phone.
	Bundle string `json:"bundle,omitempty"`
	Force  bool   `json:"force,omitempty"`
}

func (a *Agent) serveControl(ctx context.Context, ln net.Listener) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			var req controlRequest
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				writeJSON(conn, map[string]string{"error": "bad request: " + err.Error()})
				return
			}
			resp, err := a.control(ctx, req)
			if err != nil {
				writeJSON(conn, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(conn, resp)
		}()
	}
}

func writeJSON(conn net.Conn, v any) {
	if err := json.NewEncoder(conn).Encode(v); err != nil {
		// The client went away; nothing to tell it.
		return
	}
}

func (a *Agent) control(ctx context.Context, req controlRequest) (any, error) {
	switch req.Command {
	case "status":
		return a.Status(), nil
	case "update-status", "update-install", "update-mark-good":
		return a.controlUpdate(ctx, req)
	}
	acct, err := a.Account(req.Account)
	if err != nil {
		return nil, err
	}
	c, err := acct.FindCall(req.CallID)
	if err != nil {
		return nil, err
	}
	switch req.Command {
	case "answer":
		return c.Status(), c.Answer()
	case "hangup":
		c.Hangup(ctx)
		return c.Status(), nil
	case "hold", "unhold":
		return c.Status(), c.Hold(ctx, req.Command == "hold")
	}
	return nil, fmt.Errorf("unknown command %q", req.Command)
}

// controlUpdate runs updater commands for `hardphone update` while the
// agent runs: the agent owns the state file, so the command asks it.
func (a *Agent) controlUpdate(ctx context.Context, req controlRequest) (any, error) {
	if a.updater == nil {
		return nil, errors.New("no updater configured ([update] layout)")
	}
	switch req.Command {
	case "update-install":
		return a.updater.Install(ctx, req.Bundle, update.InstallOptions{Force: req.Force})
	case "update-mark-good":
		if err := a.updater.MarkGood(); err != nil {
			return nil, err
		}
	}
	return a.updater.Status()
}

// ErrNoAgent is returned by Control when no agent listens on the socket.
var ErrNoAgent = errors.New("no agent is running on the control socket")

// Control sends one request (a JSON object with "command" and its fields)
// to a running agent and returns its JSON answer; an answer carrying
// "error" becomes an error.
func Control(path string, req map[string]any) (json.RawMessage, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(conn).Decode(&raw); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return nil, errors.New(e.Error)
	}
	return raw, nil
}

// QueryStatus asks a running agent over its control socket.
func QueryStatus(path string) (json.RawMessage, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(controlRequest{Command: "status"}); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := json.NewDecoder(conn).Decode(&raw); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return raw, nil
}

func rtpRange(r *lockdown.RTP) string {
	if r == nil {
		return "none: no media allowed"
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}
