package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// errTampered: events --verify found the journal edited (exit status 1).
var errTampered = errors.New("the security-event journal does not verify")

// cmdEvents shows the security-event journal, or proves it: through the
// running agent (it holds the state file), or from the state file itself
// when no agent runs.
func cmdEvents(args []string, stdout, stderr io.Writer) (err error) {
	fs := cli.NewFlagSet("events", "hardphone events --config FILE [--json] [--verify] [--from SEQ] [--limit N]", stderr)
	var cf commonFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	verify := fs.Bool("verify", false, "prove the hash chain and every signed checkpoint; exit 1 if anything was edited, removed or reordered")
	from := fs.Uint64("from", 0, "first record (seq); 0: the oldest kept")
	limit := fs.Int("limit", 0, "at most this many records (0: as many as one answer holds)")
	if _, err := parse(fs, args, stdout, 0, 0); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var (
		recs   []json.RawMessage
		report *events.Report
	)
	fromAgent := false
	if cfg.ControlSocket != "" {
		c := control.NewClient(cfg.ControlSocket)
		if *verify {
			report, err = c.EventsVerify(ctx)
		} else {
			recs, err = c.EventsList(ctx, *from, *limit)
		}
		switch {
		case err == nil:
			fromAgent = true
		case !errors.Is(err, control.ErrNoAgent):
			return err
		}
	}
	if !fromAgent {
		log, lerr := cf.logger(stderr)
		if lerr != nil {
			return lerr
		}
		ph, err := system.Open(cfg, log)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, ph.Close()) }()
		ev, err := ph.Events()
		if err != nil {
			return err
		}
		if *verify {
			if report, err = ev.Verify(); err != nil && report == nil {
				return err
			}
		} else {
			rs, err := ev.List(*from, *limit)
			if err != nil {
				return err
			}
			for _, r := range rs {
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				recs = append(recs, b)
			}
		}
	}
	if *verify {
		return showVerify(stdout, report, *asJSON)
	}
	for _, r := range recs {
		if *asJSON {
			fmt.Fprintln(stdout, string(r))
			continue
		}
		var rec struct {
			Seq   uint64 `json:"seq"`
			Type  string `json:"type"`
			Time  string `json:"time"`
			Error string `json:"error"`
			Event *struct {
				Text string `json:"text"`
			} `json:"event"`
		}
		if err := json.Unmarshal(r, &rec); err != nil {
			return fmt.Errorf("journal record: %w", err)
		}
		switch {
		case rec.Event != nil:
			fmt.Fprintf(stdout, "%6d %s %s\n", rec.Seq, rec.Time, rec.Event.Text)
		case rec.Error != "":
			fmt.Fprintf(stdout, "%6d DAMAGED: %s\n", rec.Seq, rec.Error)
		default:
			fmt.Fprintf(stdout, "%6d %s (%s, signed)\n", rec.Seq, rec.Time, rec.Type)
		}
	}
	return nil
}

func showVerify(w io.Writer, r *events.Report, asJSON bool) error {
	if asJSON {
		if err := json.NewEncoder(w).Encode(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "records %d-%d: %d events, %d signed, %d dropped by the size bound; signatures cover up to %d (%d after it unsigned); delivered up to %d\n",
			r.First, r.Last, r.Events, r.Signed, r.Dropped, r.LastSigned, r.Unsigned, r.Delivered)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "PROBLEM %s\n", p)
		}
	}
	if !r.OK() {
		return fmt.Errorf("%w: %d problems", errTampered, len(r.Problems))
	}
	return nil
}
