package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/internal/cli"
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("status", "hardphone status --config FILE | --socket PATH [--json]", stderr)
	var cf commonFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	socket := fs.String("socket", "", "control socket of a running agent (default: the config's control_socket)")
	if _, err := parse(fs, args, stdout, 0, 0); err != nil {
		return err
	}
	c, err := controlClient(&cf, *socket)
	if err != nil {
		return err
	}
	st, err := c.Status(context.Background())
	if err != nil {
		return fmt.Errorf("is the agent running? %w", err)
	}
	if *asJSON {
		// One line, for scripts.
		return json.NewEncoder(stdout).Encode(st)
	}
	printStatus(stdout, st)
	return nil
}

// controlClient is the client for the socket flag, else for the config's
// control_socket.
func controlClient(cf *commonFlags, socket string) (*control.Client, error) {
	if socket != "" {
		return control.NewClient(socket), nil
	}
	cfg, err := cf.load()
	if err != nil {
		return nil, err
	}
	if cfg.ControlSocket == "" {
		return nil, errors.New("config has no control_socket, and this command needs a running agent to ask")
	}
	return control.NewClient(cfg.ControlSocket), nil
}

func printStatus(w io.Writer, st *control.Status) {
	cred := st.Credentials
	if st.Weaker {
		cred += " (weaker than a TPM)"
	}
	fmt.Fprintf(w, "credentials: %s\n", cred)
	if f := st.Fleet; f != nil {
		if f.Enrolled {
			fmt.Fprintf(w, "fleet: device %s (serial %s), certificate until %s, renewed from %s\n", f.DeviceID, f.Serial,
				f.CertNotAfter.UTC().Format(time.RFC3339), f.RenewAt.UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "fleet: not enrolled (%s)\n", f.Detail)
		}
	}
	if p := st.Provisioning; p != nil {
		printProvisioning(w, p)
	}
	if st.Lockdown != nil {
		fmt.Fprintf(w, "lockdown: %s, %d drift events\n", st.Lockdown.Policy, st.Lockdown.DriftEvents)
	} else {
		fmt.Fprintln(w, "lockdown: none (no policy: nothing here limits what listens or where media goes)")
	}
	for _, a := range st.Accounts {
		reg := "not registered"
		if a.Registered {
			reg = fmt.Sprintf("registered (granted %ds, since %s, flow %s)", a.Granted, a.Since, a.Flow)
		}
		fmt.Fprintf(w, "%s %s via %s: %s\n", a.Name, a.AOR, a.Registrar, reg)
		if a.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", a.LastError)
		}
		for _, c := range a.Calls {
			fmt.Fprintf(w, "  call %s %s %s %s srtp=%s sent=%d recv=%d auth_failures=%d replays=%d\n",
				c.ID, c.Direction, c.Peer, c.State, c.Media.Suite, c.Media.PacketsSent, c.Media.PacketsReceived,
				c.Media.AuthFailures, c.Media.Replays)
		}
	}
	r := st.Runtime
	fmt.Fprintf(w, "memory: Go heap %d KiB, stacks %d KiB, %d goroutines\n", r.HeapBytes/1024, r.StackBytes/1024, r.Goroutines)
	if c := r.CodeRelease; c != nil {
		switch {
		case c.Error != "":
			fmt.Fprintf(w, "  idle code release failed: %s\n", c.Error)
		case c.Count == 0:
			fmt.Fprintf(w, "  idle code release: after %ds quiet, none yet\n", c.QuietSeconds)
		default:
			fmt.Fprintf(w, "  idle code release: after %ds quiet; %d so far, the last at %s (%d KiB of code resident before, %d after)\n",
				c.QuietSeconds, c.Count, c.Last.Format(time.RFC3339), c.BeforeKiB, c.AfterKiB)
		}
	}
}

// printProvisioning prints what the fleet's repositories told the phone:
// "stale" first when the metadata expired.
func printProvisioning(w io.Writer, p *control.ProvisioningStatus) {
	fresh := "fresh"
	if p.Stale {
		fresh = fmt.Sprintf("stale (%s %s metadata expired: keeping the last good configuration)", p.StaleRepository, p.StaleRole)
	}
	fmt.Fprintf(w, "fleet metadata: %s, director targets v%d, image targets v%d", fresh, p.DirectorTargets, p.ImageTargets)
	if !p.LastRefresh.IsZero() {
		fmt.Fprintf(w, ", refreshed %s", p.LastRefresh.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	cfg := "the image's config alone"
	if p.ConfigVersion != 0 {
		cfg = fmt.Sprintf("fleet document v%d", p.ConfigVersion)
	}
	switch {
	case p.Trial:
		cfg += fmt.Sprintf(" on trial (waiting for %s to register; good: v%d)", strings.Join(p.TrialWatch, ", "), p.GoodVersion)
	case p.ConfigVersion != 0:
		cfg += " (good)"
	}
	fmt.Fprintf(w, "fleet config: %s\n", cfg)
	if p.RunningError != "" {
		fmt.Fprintf(w, "  left out: %s\n", p.RunningError)
	}
	if r := p.Reverted; r != nil {
		fmt.Fprintf(w, "  reverted v%d at %s: %s\n", r.Version, r.At.UTC().Format(time.RFC3339), r.Reason)
	}
	if r := p.Refused; r != nil && r.Version > p.GoodVersion {
		fmt.Fprintf(w, "  refused v%d at %s: %s\n", r.Version, r.At.UTC().Format(time.RFC3339), r.Reason)
	}
	if f := p.Firmware; f != nil {
		fmt.Fprintf(w, "fleet firmware: %s (%s): %s", f.Version, f.Target, f.State)
		if f.Detail != "" {
			fmt.Fprintf(w, ": %s", f.Detail)
		}
		fmt.Fprintln(w)
	}
	if p.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", p.LastError)
	}
}
