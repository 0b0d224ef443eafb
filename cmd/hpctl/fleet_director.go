package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/internal/cli"
)

// maxConfigFile bounds a configuration document read from a file.
const maxConfigFile = api.MaxConfigRequest

// scopeFlags pick what an assignment applies to: --group G or --device ID.
type scopeFlags struct {
	group, device string
}

func (s *scopeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.group, "group", "", "the group (as the vendor manifest names it)")
	fs.StringVar(&s.device, "device", "", "one device (dev- and 32 hex digits)")
}

func (s *scopeFlags) scope(cmd string) (kind, name string, err error) {
	switch {
	case (s.group == "") == (s.device == ""):
		return "", "", usagef("%s: give exactly one of --group and --device", cmd)
	case s.group != "":
		return api.ScopeGroup, s.group, nil
	case !api.ValidDeviceID(s.device):
		return "", "", usagef("%s: --device %q: want dev- and 32 hex digits", cmd, s.device)
	}
	return api.ScopeDevice, s.device, nil
}

// fleetConfig is `hpctl fleet config set|show|delete`.
func fleetConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("fleet config: want set, show or delete")
	}
	sub, rest := args[0], args[1:]
	wantArgs := map[string]int{"set": 1, "show": 0, "delete": 0}
	n, known := wantArgs[sub]
	if !known {
		return usagef("fleet config: unknown command %q, want set, show or delete", sub)
	}
	fs := cli.NewFlagSet("fleet config "+sub, "hpctl fleet config "+sub+" --group G|--device ID [FILE] [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	var sf scopeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	pos, err := cli.Parse(fs, rest, stdout)
	if err != nil {
		return err
	}
	kind, name, err := sf.scope("fleet config " + sub)
	if err != nil {
		return err
	}
	if len(pos) != n {
		if sub == "set" {
			return usagef("fleet config set: want one FILE (TOML, the phone's config schema; - for stdin)")
		}
		return usagef("fleet config %s: no arguments", sub)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var out *api.AssignmentResponse
	switch sub {
	case "set":
		if len(pos) != 1 {
			return usagef("fleet config set: want one FILE (TOML, the phone's config schema; - for stdin)")
		}
		doc, err := readBounded(pos[0], maxConfigFile)
		if err != nil {
			return fmt.Errorf("fleet config set: %w", err)
		}
		if out, err = c.SetConfig(ctx, kind, name, doc); err != nil {
			return err
		}
	case "show":
		if len(pos) != 0 {
			return usagef("fleet config show: no arguments")
		}
		if out, err = c.Config(ctx, kind, name); err != nil {
			return err
		}
	case "delete":
		if len(pos) != 0 {
			return usagef("fleet config delete: no arguments")
		}
		if out, err = c.DeleteConfig(ctx, kind, name); err != nil {
			return err
		}
	default:
		return usagef("fleet config: unknown command %q, want set, show or delete", sub)
	}
	return printAssignment(stdout, out, *asJSON, sub == "show")
}

// fleetFirmware is `hpctl fleet firmware assign|clear|show`.
func fleetFirmware(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("fleet firmware: want assign, clear or show")
	}
	sub, rest := args[0], args[1:]
	wantArgs := map[string]int{"assign": 1, "clear": 0, "show": 0}
	n, known := wantArgs[sub]
	if !known {
		return usagef("fleet firmware: unknown command %q, want assign, clear or show", sub)
	}
	fs := cli.NewFlagSet("fleet firmware "+sub, "hpctl fleet firmware "+sub+" --group G|--device ID [NAME] [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	var sf scopeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	pos, err := cli.Parse(fs, rest, stdout)
	if err != nil {
		return err
	}
	kind, name, err := sf.scope("fleet firmware " + sub)
	if err != nil {
		return err
	}
	if len(pos) != n {
		if sub == "assign" {
			return usagef("fleet firmware assign: want one NAME (the image repository's target, hpctl repo add)")
		}
		return usagef("fleet firmware %s: no arguments", sub)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var out *api.AssignmentResponse
	switch sub {
	case "assign":
		if len(pos) != 1 {
			return usagef("fleet firmware assign: want one NAME (the image repository's target, hpctl repo add)")
		}
		if out, err = c.AssignFirmware(ctx, kind, name, pos[0]); err != nil {
			return err
		}
	case "clear":
		if out, err = c.ClearFirmware(ctx, kind, name); err != nil {
			return err
		}
	case "show":
		if out, err = c.Config(ctx, kind, name); err != nil {
			return err
		}
	default:
		return usagef("fleet firmware: unknown command %q, want assign, clear or show", sub)
	}
	return printAssignment(stdout, out, *asJSON, sub == "show")
}

func printAssignment(w io.Writer, a *api.AssignmentResponse, asJSON, withDoc bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	}
	fmt.Fprintf(w, "%s %s: revision %d, by %s at %s\n", a.Kind, a.Name, a.Revision, a.UpdatedBy, a.UpdatedAt.UTC().Format(time.RFC3339))
	if f := a.Firmware; f != nil {
		fmt.Fprintf(w, "firmware   %s (version %s, security %d, %d bytes, sha256 %s)\n", f.Name, f.Version, f.SecurityVersion, f.Length, f.SHA256)
	} else {
		fmt.Fprintf(w, "firmware   none\n")
	}
	for _, p := range a.Published {
		fmt.Fprintf(w, "published  %s: config version %d, director targets v%d\n", p.DeviceID, p.ConfigVersion, p.TargetsVersion)
	}
	for _, f := range a.Failed {
		fmt.Fprintf(w, "NOT PUBLISHED %s (retried in the background)\n", f)
	}
	if withDoc && a.TOML != "" {
		fmt.Fprintf(w, "--- configuration document ---\n%s", a.TOML)
	}
	return nil
}

// fleetProvision is `hpctl fleet device provision|rotate ID`.
func fleetProvision(what string, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet device "+what, "hpctl fleet device "+what+" ID [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !api.ValidDeviceID(pos[0]) {
		return usagef("fleet device %s: want one device ID (dev- and 32 hex digits)", what)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var st *api.ProvisionStatus
	if what == "rotate" {
		st, err = c.Rotate(ctx, pos[0])
	} else {
		st, err = c.Provision(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "device           %s\nconfig version   %d (the phone reports %d)\ndirector         timestamp v%d (expires %s), snapshot v%d, targets v%d (expires %s)\n",
		st.DeviceID, st.ConfigVersion, st.ReportedConfigVersion, st.TimestampVersion, st.TimestampExpires.UTC().Format(time.RFC3339),
		st.SnapshotVersion, st.TargetsVersion, st.TargetsExpires.UTC().Format(time.RFC3339))
	if f := st.Firmware; f != nil {
		fmt.Fprintf(stdout, "firmware         %s (version %s, security %d)\n", f.Name, f.Version, f.SecurityVersion)
	}
	for _, a := range st.Accounts {
		prev := ""
		if a.PreviousValid {
			prev = ", previous password valid until the phone confirms"
		}
		fmt.Fprintf(stdout, "account          %s: %s@%s -> %s, password %d sealed for version %d%s\n",
			a.Name, a.User, a.Domain, a.Credential, a.Generation, a.SealedVersion, prev)
	}
	return nil
}

// readBounded reads a file (or stdin for "-") of at most max bytes.
func readBounded(path string, max int) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", path, max)
	}
	return b, nil
}
