package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("run", "hardphone run --config FILE [--audio pulse|alsa|none] [--mic NAME] [--speaker NAME] [--play IN.wav] [--record-dir DIR]", stderr)
	var cf commonFlags
	cf.register(fs)
	var af audioFlags
	af.register(fs)
	play := fs.String("play", "", "WAV file (mono 16-bit PCM, 8/16/32/48 kHz) to play into answered calls")
	recordDir := fs.String("record-dir", "", "directory to record each answered call into (CALL-ID-LOCALTAG.wav)")
	if _, err := parse(fs, args, stdout, 0, 0); err != nil {
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
	if err := af.apply(cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The fleet's configuration documents change the config under the
	// agent: it stops (ErrConfigChanged) and the phone is built again
	// from the image's config with the current document merged over it.
	// Same process: PID 1 sees one agent.
	var skip error
	for {
		ph, err := system.OpenDaemon(cfg, log, skip)
		if err != nil {
			return err
		}
		ag, err := ph.Agent(system.Daemon, version)
		if err != nil {
			cerr := ph.Close()
			if ph.FleetRunning() != 0 && skip == nil {
				// The fleet's document does not build an agent: leave it
				// out (one on trial is then reverted by the agent).
				log.Error("the agent does not start with the fleet configuration; leaving it out", "version", ph.FleetRunning(), "error", err)
				skip = err
				continue
			}
			return errors.Join(err, cerr)
		}
		skip = nil
		// Files given on the command line take the place of the
		// configured sound device.
		if *play != "" || *recordDir != "" {
			for _, acct := range ag.Accounts() {
				acct.SetInbound(inboundAudio(*play, *recordDir, log))
			}
		}
		log.Info("hardphone starting", "version", version, "accounts", len(ph.Config().Accounts), "fleet_config", ph.FleetRunning())
		err = ag.Run(ctx)
		cerr := ph.Close()
		if errors.Is(err, agent.ErrConfigChanged) && ctx.Err() == nil {
			if cerr != nil {
				return cerr
			}
			log.Info("the fleet configuration changed: starting again with it")
			continue
		}
		if errors.Is(err, agent.ErrConfigChanged) {
			err = nil
		}
		return errors.Join(err, cerr)
	}
}

func inboundAudio(play, recordDir string, log *slog.Logger) sip.Inbound {
	return func(c *sip.Call) sip.CallOptions {
		var o sip.CallOptions
		if play != "" {
			src, err := system.OpenPlayback(play)
			if err != nil {
				log.Warn("play file", "error", err)
			} else {
				o.Source = src
			}
		}
		if recordDir != "" {
			// One file per dialog: two calls may share a Call-ID.
			sink, err := system.CreateRecording(fmt.Sprintf("%s/%s-%s.wav", recordDir, sanitize(c.ID()), sanitize(c.Dialog().LocalTag)))
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

// sanitize keeps a Call-ID or a tag usable as a file name.
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
