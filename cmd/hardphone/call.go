package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

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

// cmdCall places one call with only what a call needs: the accounts, and
// with a lockdown policy the call's own pinholes. It applies no policy,
// opens no updater and listens on no control socket (a running agent
// does those).
func cmdCall(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("call", "hardphone call --config FILE [--account NAME] [--audio pulse|alsa|none] [--mic NAME] [--speaker NAME] [--play IN.wav] [--record OUT.wav] [--duration 10s] [--dtmf DIGITS] URI", stderr)
	var cf commonFlags
	cf.register(fs)
	var af audioFlags
	af.register(fs)
	account := fs.String("account", "", "account name (default: the first)")
	play := fs.String("play", "", "WAV file (mono 16-bit PCM, 8/16/32/48 kHz) to send")
	record := fs.String("record", "", "WAV file (16 kHz mono) to record what the peer sends")
	duration := fs.Duration("duration", 10*time.Second, "how long to stay in the call")
	dtmf := fs.String("dtmf", "", "RFC 4733 digits to send once the call is up")
	regTimeout := fs.Duration("register-timeout", 15*time.Second, "how long to wait for registration")
	pos, err := parse(fs, args, stdout, 1, 1)
	if err != nil {
		return exitCode("call", err, stderr)
	}
	target := pos[0]
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
	if err := af.apply(cfg); err != nil {
		return fail(err)
	}
	ph, err := system.Open(cfg, log)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := ph.Close(); err != nil {
			log.Warn("close", "error", err)
		}
	}()
	registered := make(chan struct{}, 1)
	ag, err := ph.Agent(system.OneShot, version, agent.WithEventWatcher(func(ev sip.Event) {
		if ev.Kind == sip.EventRegistered && (*account == "" || ev.Account == *account) {
			select {
			case registered <- struct{}{}:
			default:
			}
		}
	}))
	if err != nil {
		return fail(err)
	}
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
		src, err := system.OpenPlayback(*play)
		if err != nil {
			return fail(err)
		}
		opts.Source = src
	}
	if *record != "" {
		sink, err := system.CreateRecording(*record)
		if err != nil {
			return fail(err)
		}
		opts.Sink = sink
		defer func() {
			if err := sink.Close(); err != nil {
				log.Warn("close recording", "error", err)
			}
		}()
	}
	if *play == "" && *record == "" {
		// No files: talk through the configured sound device, if any.
		if open := system.CallAudio(cfg.Audio, "hardphone call"); open != nil {
			src, sink, closeDev, err := open()
			if err != nil {
				return fail(err)
			}
			opts.Source, opts.Sink = src, sink
			defer func() {
				if err := closeDev(); err != nil {
					log.Warn("close sound device", "error", err)
				}
			}()
		}
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
