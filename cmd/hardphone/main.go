package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/hal/audio"
)

// Stamped by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	initIfPID1() // PID 1 on a phone: never returns (init_linux.go)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone <command> [flags]

commands:
  run       run the agent: register every account, answer calls
  call      register, place one call, print a JSON summary
  status    show registrations, calls and counters
  version   print version, commit and platform
  creds     manage TPM-sealed credentials: set, list, rm, wipe, status
  identity  the device identity key in the TPM: create, csr, import-cert, show
  update    A/B updates: install, status, mark-good, check-boot
  lockdown  plan, apply and check the lockdown policy (exit 3 on drift)`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "hardphone %s commit %s %s/%s %s\n", version, commit, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return 0
	case "run":
		err = cmdRun(rest, stderr)
	case "call":
		return cmdCall(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "creds":
		err = cmdCreds(rest, stdout, stderr)
	case "identity":
		err = cmdIdentity(rest, stdout, stderr)
	case "update":
		err = cmdUpdate(rest, stdout, stderr)
	case "lockdown":
		err = cmdLockdown(rest, stdout, stderr)
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "hardphone: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "hardphone %s: %v\n", cmd, err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

type commonFlags struct {
	config    string
	logFormat string
	logLevel  string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (TOML)")
	fs.StringVar(&c.logFormat, "log-format", "", "log format: text or json (default: text on a terminal, json otherwise)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func (c *commonFlags) logger(w io.Writer) (*slog.Logger, error) {
	return newLogger(w, c.logFormat, c.logLevel)
}

// newLogger is every subcommand's slog logger: text on a terminal, JSON
// otherwise unless format says; sipgo's own logging goes through it too.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	var log *slog.Logger
	switch format {
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	sip.SetLibraryLogger(log)
	return log, nil
}

func (c *commonFlags) load() (*config.Config, error) {
	if c.config == "" {
		return nil, errors.New("--config is required")
	}
	return config.Load(c.config)
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs)
	play := fs.String("play", "", "WAV file (8 kHz mono PCM) to play into answered calls")
	recordDir := fs.String("record-dir", "", "directory to record each answered call into (CALL-ID.wav)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := cf.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ag, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	defer ag.Close()
	for _, acct := range ag.Accounts() {
		acct.SetInbound(inboundAudio(*play, *recordDir, log))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("hardphone starting", "version", version, "accounts", len(cfg.Accounts))
	return ag.Run(ctx)
}

func inboundAudio(play, recordDir string, log *slog.Logger) sip.Inbound {
	return func(c *sip.Call) sip.CallOptions {
		var o sip.CallOptions
		if play != "" {
			src, err := audio.OpenWAV(play)
			if err != nil {
				log.Warn("play file", "error", err)
			} else {
				o.Source = src
			}
		}
		if recordDir != "" {
			sink, err := audio.CreateWAV(fmt.Sprintf("%s/%s.wav", recordDir, sanitize(c.ID())), 8000)
			if err != nil {
				log.Warn("record file", "error", err)
			} else {
				o.Sink = sink
				go func() {
					<-c.Done()
					if err := sink.Close(); err != nil {
						log.Warn("close recording", "error", err)
					}
				}()
			}
		}
		return o
	}
}

// sanitize keeps a Call-ID usable as a file name.
func sanitize(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	socket := fs.String("socket", "", "control socket of a running agent (default: the config's control_socket)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *socket
	if path == "" {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		path = cfg.ControlSocket
		if path == "" {
			return errors.New("config has no control_socket, and status needs a running agent to ask")
		}
	}
	raw, err := agent.QueryStatus(path)
	if err != nil {
		return fmt.Errorf("is the agent running? %w", err)
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(raw))
		return nil
	}
	var st agent.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	cred := st.Credentials
	if st.Weaker {
		cred += " (weaker than a TPM)"
	}
	fmt.Fprintf(stdout, "credentials: %s\n", cred)
	if st.Lockdown != nil {
		fmt.Fprintf(stdout, "lockdown: %s, %d drift events\n", st.Lockdown.Policy, st.Lockdown.DriftEvents)
	}
	for _, a := range st.Accounts {
		reg := "not registered"
		if a.Registered {
			reg = fmt.Sprintf("registered (granted %ds, since %s, flow %s)", a.Granted, a.Since, a.Flow)
		}
		fmt.Fprintf(stdout, "%s %s via %s: %s\n", a.Name, a.AOR, a.Registrar, reg)
		if a.LastError != "" {
			fmt.Fprintf(stdout, "  last error: %s\n", a.LastError)
		}
		for _, c := range a.Calls {
			fmt.Fprintf(stdout, "  call %s %s %s %s srtp=%s sent=%d recv=%d auth_failures=%d replays=%d\n",
				c.ID, c.Direction, c.Peer, c.State, c.Media.Suite, c.Media.PacketsSent, c.Media.PacketsReceived,
				c.Media.AuthFailures, c.Media.Replays)
		}
	}
	return nil
}

// callSummary is the one JSON line `hardphone call` prints.
type callSummary struct {
	Account     string  `json:"account"`
	Target      string  `json:"target"`
	Established bool    `json:"established"`
	Secure      bool    `json:"srtp"`
	SetupMS     float64 `json:"setup_ms"`
	DurationS   float64 `json:"duration_s"`
	EndReason   string  `json:"end_reason,omitempty"`
	Error       string  `json:"error,omitempty"`
	Media       any     `json:"media,omitempty"`
	DTMFSent    string  `json:"dtmf_sent,omitempty"`
	DTMFRecv    string  `json:"dtmf_received,omitempty"`
}

func cmdCall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	var cf commonFlags
	cf.register(fs)
	account := fs.String("account", "", "account name (default: the first)")
	play := fs.String("play", "", "WAV file (8 kHz mono 16-bit PCM) to send")
	record := fs.String("record", "", "WAV file to record what the peer sends")
	duration := fs.Duration("duration", 10*time.Second, "how long to stay in the call")
	dtmf := fs.String("dtmf", "", "RFC 4733 digits to send once the call is up")
	regTimeout := fs.Duration("register-timeout", 15*time.Second, "how long to wait for registration")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hardphone call --config FILE [--account NAME] [--play IN.wav] [--record OUT.wav] [--duration 10s] URI")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	target := fs.Arg(0)
	sum := callSummary{Account: *account, Target: target}
	fail := func(err error) int {
		sum.Error = err.Error()
		printJSON(stdout, sum)
		return 1
	}
	log, err := cf.logger(stderr)
	if err != nil {
		return fail(err)
	}
	cfg, err := cf.load()
	if err != nil {
		return fail(err)
	}
	registered := make(chan struct{}, 1)
	ag, err := agent.New(cfg, log, agent.WithEventWatcher(func(ev sip.Event) {
		if ev.Kind == "registered" && (*account == "" || ev.Account == *account) {
			select {
			case registered <- struct{}{}:
			default:
			}
		}
	}))
	if err != nil {
		return fail(err)
	}
	defer ag.Close()
	acct, err := ag.Account(*account)
	if err != nil {
		return fail(err)
	}
	sum.Account = acct.Name()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runCtx, cancelRun := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ag.Run(runCtx); err != nil {
			log.Error("agent", "error", err)
		}
	}()
	defer func() { cancelRun(); <-done }()

	select {
	case <-registered:
	case <-time.After(*regTimeout):
		return fail(fmt.Errorf("not registered after %v: %s", *regTimeout, acct.Status().LastError))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	var opts sip.CallOptions
	if *play != "" {
		src, err := audio.OpenWAV(*play)
		if err != nil {
			return fail(err)
		}
		opts.Source = src
	}
	var sink *audio.WAVSink
	if *record != "" {
		if sink, err = audio.CreateWAV(*record, 8000); err != nil {
			return fail(err)
		}
		opts.Sink = sink
		defer func() {
			if err := sink.Close(); err != nil {
				log.Warn("close recording", "error", err)
			}
		}()
	}
	start := time.Now()
	c, err := acct.Dial(ctx, target, opts)
	if c != nil {
		sum.Media = c.Media().Stats()
	}
	if err != nil {
		return fail(err)
	}
	sum.Established = true
	sum.SetupMS = float64(c.SetupTime().Microseconds()) / 1000
	var (
		recvMu   sync.Mutex
		received []rune
	)
	go func() {
		for d := range c.Media().DTMF() {
			recvMu.Lock()
			received = append(received, d)
			recvMu.Unlock()
		}
	}()
	if *dtmf != "" {
		for _, d := range *dtmf {
			if err := c.Media().SendDTMF(d, 160*time.Millisecond); err != nil {
				log.Warn("dtmf", "digit", string(d), "error", err)
				break
			}
		}
		sum.DTMFSent = *dtmf
	}
	select {
	case <-time.After(*duration - time.Since(start) + c.SetupTime()):
		c.Hangup(ctx)
	case <-c.Done():
	case <-ctx.Done():
		c.Hangup(context.Background())
	}
	st := c.Media().Stats()
	sum.Media = st
	sum.Secure = st.Suite != ""
	sum.EndReason = c.EndReason()
	sum.DurationS = time.Since(start).Seconds()
	recvMu.Lock()
	sum.DTMFRecv = string(received)
	recvMu.Unlock()
	printJSON(stdout, sum)
	if !sum.Secure {
		return 1
	}
	return 0
}

func printJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(w, `{"error":%q}`+"\n", err.Error())
		return
	}
	fmt.Fprintln(w, string(b))
}
