package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
}
