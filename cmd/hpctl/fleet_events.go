package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/internal/cli"
)

// fleetFindings lists the anomaly detector's findings, newest first, and
// the blocks and quarantines in force.
func fleetFindings(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet findings", "hpctl fleet findings [--device ID] [--rule RULE] [--limit N] [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	device := fs.String("device", "", "only the findings that name this device")
	rule := fs.String("rule", "", "only the findings of this rule (call.premium, fleet.probe, ...)")
	limit := fs.Int("limit", 50, "at most this many findings (1..1000)")
	asJSON := fs.Bool("json", false, "print JSON (the page as the server answers it)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("fleet findings: unexpected arguments %q", pos)
	}
	if *device != "" && !api.ValidDeviceID(*device) {
		return usagef("fleet findings: --device %q: want dev- and 32 hex digits", *device)
	}
	if *limit < 1 || *limit > api.MaxPageSize {
		return usagef("fleet findings: --limit %d: want 1..%d", *limit, api.MaxPageSize)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	p, err := c.Findings(ctx, client.FindingQuery{DeviceID: *device, Rule: *rule, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tRULE\tSEVERITY\tDEVICES\tSOURCE\tRESPONSES\tSUMMARY")
	for _, f := range p.Findings {
		devs := strings.Join(f.Devices, ",")
		if f.MoreDevices > 0 {
			devs += fmt.Sprintf(" +%d", f.MoreDevices)
		}
		var rs []string
		for _, r := range f.Responses {
			rs = append(rs, r.Kind+":"+r.Outcome)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Time.UTC().Format(time.RFC3339), f.Rule, f.Severity,
			orDash(devs), orDash(f.Source), orDash(strings.Join(rs, ",")), f.Summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Active) > 0 {
		fmt.Fprintf(stdout, "\nin force:\n")
		for _, a := range p.Active {
			fmt.Fprintf(stdout, "  %s %s until %s (finding %d, %s)\n", a.DeviceID, a.Kind, a.Until.UTC().Format(time.RFC3339), a.Finding, a.Rule)
		}
	}
	if p.Next != "" {
		fmt.Fprintf(stdout, "more: the server has older findings (before %s)\n", p.Next)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fleetDeviceEvents shows a device's exported journal as the fleet holds
// it: cursor, gaps and the newest records.
func fleetDeviceEvents(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet device events", "hpctl fleet device events ID [--after POS] [--limit N] [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	after := fs.String("after", "", "list the records after this position (as a previous page said)")
	limit := fs.Int("limit", 100, "at most this many records (1..1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !api.ValidDeviceID(pos[0]) {
		return usagef("fleet device events: want one device ID (dev- and 32 hex digits)")
	}
	if *limit < 1 || *limit > api.MaxPageSize {
		return usagef("fleet device events: --limit %d: want 1..%d", *limit, api.MaxPageSize)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	d, err := c.DeviceEvents(ctx, pos[0], *after, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(stdout, "device     %s\njournal    %s\nhead       %d (signed through %d)\nreceived   %d records, %d kept, %d dropped by the fleet's bound, %d journals replaced\n",
		d.DeviceID, orDash(d.Chain), d.Head, d.LastSigned, d.Received, d.Stored, d.Truncated, d.Replaced)
	for _, g := range d.Gaps {
		what := fmt.Sprintf("records %d..%d", g.From, g.To)
		switch g.Kind {
		case "truncated":
			what += fmt.Sprintf(" dropped by the phone (signed truncation; %d undelivered)", g.Undelivered)
		case "missing":
			what += " MISSING: nothing the phone signed accounts for them"
		case "replaced":
			what = fmt.Sprintf("journal %s replaced after record %d by %s", g.OldChain, g.From-1, g.Chain)
		}
		fmt.Fprintf(stdout, "gap        %s (found %s)\n", what, g.At.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(stdout)
	for _, r := range d.Records {
		line := fmt.Sprintf("%6d %s %-10s", r.Seq, r.Time.UTC().Format(time.RFC3339), r.Type)
		switch r.Type {
		case "event":
			line += " " + r.Severity + " " + r.Kind
			if r.Account != "" {
				line += " account=" + fmt.Sprintf("%q", r.Account)
			}
			if r.Peer != "" {
				line += " peer=" + r.Peer
			}
			for k, v := range r.Detail {
				line += " " + k + "=" + fmt.Sprintf("%q", v)
			}
		case "checkpoint":
			line += " reason=" + r.Reason
		case "truncation":
			line += fmt.Sprintf(" first=%d dropped=%d", r.FirstSeq, r.Dropped)
		}
		fmt.Fprintln(stdout, line)
	}
	if d.Next != "" {
		fmt.Fprintf(stdout, "more: --after %s\n", d.Next)
	}
	return nil
}

// fleetLift ends a device's outbound block or quarantine early.
func fleetLift(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet device lift", "hpctl fleet device lift ID block_outbound|quarantine --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 2 || !api.ValidDeviceID(pos[0]) || pos[1] != "block_outbound" && pos[1] != "quarantine" {
		return usagef("fleet device lift: want a device ID and block_outbound or quarantine")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	p, err := c.Lift(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s of %s lifted; %d responses in force\n", pos[1], pos[0], len(p.Active))
	return nil
}
