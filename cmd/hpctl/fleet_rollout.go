package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/internal/cli"
)

// SessionUserAgent is the User-Agent hpctl's admin requests carry: the
// server binds a session to it, so the login that made the session must
// have sent the same (the console's CLI login does).
const SessionUserAgent = "hpctl-console/1"

// maxSessionFile bounds a session token file.
const maxSessionFile = 1 << 10

// readSession reads a session token from a file only its owner may read.
func readSession(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("session %s: mode %v, want a regular file of mode 0600", path, st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSessionFile+1))
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(b) > maxSessionFile || tok == "" || len(tok) > 64 {
		return "", fmt.Errorf("session %s: want one token of 1..64 characters", path)
	}
	return tok, nil
}

// parseRing reads a ring: NAME=dev-...,dev-... (canaries), NAME=P% or P%.
func parseRing(s string) (api.RolloutRing, error) {
	name, val, named := strings.Cut(s, "=")
	if !named {
		name, val = s, s
	}
	if p, ok := strings.CutSuffix(val, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 {
			return api.RolloutRing{}, usagef("--ring %q: percentage 1..100", s)
		}
		return api.RolloutRing{Name: name, Percent: n}, nil
	}
	if !named {
		return api.RolloutRing{}, usagef("--ring %q: want NAME=dev-...,dev-... or [NAME=]PERCENT%%", s)
	}
	var devs []string
	for _, d := range strings.Split(val, ",") {
		if !api.ValidDeviceID(d) {
			return api.RolloutRing{}, usagef("--ring %q: device %q: want dev- and 32 hex digits", s, d)
		}
		devs = append(devs, d)
	}
	return api.RolloutRing{Name: name, Devices: devs}, nil
}

// fleetRollout is `hpctl fleet rollout ...`.
func fleetRollout(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("fleet rollout: want create, list, show, devices, approve, halt, resume or abort")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		return rolloutCreate(rest, stdout, stderr)
	case "approve":
		return fleetApprove(rest, stdout, stderr)
	case "list", "show", "devices", "halt", "resume", "abort":
	default:
		return usagef("fleet rollout: unknown command %q", sub)
	}
	fs := cli.NewFlagSet("fleet rollout "+sub, "hpctl fleet rollout "+sub+" [ID] [--json] [--reason TEXT] --server URL --pki DIR --session FILE", stderr)
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	reason := fs.String("reason", "", "why (halt, resume, abort)")
	pos, err := cli.Parse(fs, rest, stdout)
	if err != nil {
		return err
	}
	want := 1
	if sub == "list" {
		want = 0
	}
	if len(pos) != want {
		return usagef("fleet rollout %s: want %d argument(s)", sub, want)
	}
	if want == 1 && !api.ValidRolloutID(pos[0]) {
		return usagef("fleet rollout %s: %q is not a rollout ID (ro- and 32 hex digits)", sub, pos[0])
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var out any
	switch sub {
	case "list":
		var all []api.Rollout
		after := ""
		for {
			pg, err := c.Rollouts(ctx, after, 100)
			if err != nil {
				return err
			}
			all = append(all, pg.Rollouts...)
			if pg.Next == "" || len(all) >= 1000 {
				break
			}
			after = pg.Next
		}
		if *asJSON {
			return printJSON(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tGROUP\tSTATE\tRING\tCREATED BY\tCREATED")
		for _, v := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Kind, v.Group, v.State, v.CurrentRing, v.CreatedBy, v.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "devices":
		var all []api.RolloutDevice
		after := ""
		for {
			pg, err := c.RolloutDevices(ctx, pos[0], after, 1000)
			if err != nil {
				return err
			}
			all = append(all, pg.Devices...)
			if pg.Next == "" {
				break
			}
			after = pg.Next
		}
		if *asJSON {
			return printJSON(stdout, all)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tRING\tSTATUS\tREASON")
		for _, d := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Device, d.Ring, d.Status, d.Reason)
		}
		return tw.Flush()
	case "show":
		out, err = c.Rollout(ctx, pos[0])
	case "halt":
		out, err = c.HaltRollout(ctx, pos[0], *reason)
	case "resume":
		out, err = c.ResumeRollout(ctx, pos[0], *reason)
	case "abort":
		out, err = c.AbortRollout(ctx, pos[0], *reason)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	printRollout(stdout, out.(*api.Rollout))
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func rolloutCreate(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet rollout create", "hpctl fleet rollout create (--group G | --device ID) (--firmware NAME | --config FILE) --ring SPEC... [flags]", stderr)
	var af adminFlags
	af.register(fs)
	group := fs.String("group", "", "the group to roll out to")
	device := fs.String("device", "", "or one device (dev-...): its own firmware or document, e.g. a change of its security policy")
	fw := fs.String("firmware", "", "image repository target to install")
	cfg := fs.String("config", "", "the group's (or the device's own) new configuration document (TOML file; - for stdin)")
	var rings multiFlag
	fs.Var(&rings, "ring", "a ring, in order: NAME=dev-...,dev-... or [NAME=]PERCENT% (cumulative; the last 100%)")
	maxFail := fs.Int("max-failures", 0, "percent of a ring's devices that may fail before the rollout halts (0: the first failure halts)")
	deadline := fs.String("deadline", "", "how long a ring's devices have to report the change done (default 24h)")
	silent := fs.String("report-timeout", "", "a device silent this long has stopped reporting (default 1h)")
	window := fs.String("window", "", `maintenance window in the phones' local time, "Mon-Fri 02:00-04:00 Europe/Berlin"`)
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 || (*group == "") == (*device == "") || (*fw == "") == (*cfg == "") || len(rings) == 0 {
		return usagef("fleet rollout create: want exactly one of --group and --device, exactly one of --firmware and --config, and --ring")
	}
	req := api.RolloutRequest{Group: *group, Device: *device, MaxFailurePercent: *maxFail, Deadline: *deadline, ReportTimeout: *silent, Window: *window}
	for _, s := range rings {
		r, err := parseRing(s)
		if err != nil {
			return err
		}
		req.Rings = append(req.Rings, r)
	}
	if *fw != "" {
		req.Kind, req.Firmware = "firmware", *fw
	} else {
		doc, err := readConfigFile(*cfg)
		if err != nil {
			return err
		}
		req.Kind, req.Config = "config", string(doc)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	v, err := c.CreateRollout(ctx, req)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	printRollout(stdout, v)
	fmt.Fprintf(stdout, "\nthe rollout starts once a second admin approves it: hpctl fleet approve %s\n", v.ID)
	return nil
}

// readConfigFile reads a bounded TOML file (- for stdin).
func readConfigFile(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxConfigFile)
	}
	return b, nil
}

func printRollout(w io.Writer, v *api.Rollout) {
	fmt.Fprintf(w, "rollout %s: %s to group %s, %s\n", v.ID, v.Kind, v.Group, v.State)
	fmt.Fprintf(w, "  created by %s at %s\n", v.CreatedBy, v.CreatedAt.Format(time.RFC3339))
	if f := v.Firmware; f != nil {
		fmt.Fprintf(w, "  firmware %s version %s (security %d), %d bytes, sha256 %s\n", f.Name, f.Version, f.SecurityVersion, f.Length, f.SHA256)
	}
	if v.ConfigSHA256 != "" {
		fmt.Fprintf(w, "  configuration document sha256 %s\n", v.ConfigSHA256)
	}
	if len(v.PolicyChange) > 0 {
		fmt.Fprintf(w, "  changes the security policy: %s (a security admin approves)\n", strings.Join(v.PolicyChange, ", "))
	}
	if v.Signatures > 0 {
		fmt.Fprintf(w, "  every device's targets needs %d admin signature(s)\n", v.Signatures)
	}
	for _, a := range v.Approvals {
		k := ""
		if a.KeyID != "" {
			k = " with key " + a.KeyID[:16]
		}
		fmt.Fprintf(w, "  approved by %s%s at %s\n", a.Admin, k, a.At.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  halts when more than %d%% of a ring fails; deadline %s, report timeout %s", v.MaxFailurePercent, v.Deadline, v.ReportTimeout)
	if v.Window != "" {
		fmt.Fprintf(w, ", window %s", v.Window)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RING\tDEVICES\tWAITING\tUPDATING\tDONE\tFAILED\tREVERTED\tSTARTED")
	for _, r := range v.Rings {
		started := "-"
		if !r.StartedAt.IsZero() {
			started = r.StartedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Name, r.Devices, r.Waiting, r.Updating, r.Done, r.Failed, r.Reverted, started)
	}
	tw.Flush()
	if h := v.Halt; h != nil {
		fmt.Fprintf(w, "  HALTED by %s at %s, ring %s: %s\n", h.By, h.At.Format(time.RFC3339), h.Ring, h.Reason)
		for _, f := range h.Failures {
			fmt.Fprintf(w, "    %s: %s\n", f.Device, f.Reason)
		}
	}
	for _, x := range v.Excluded {
		fmt.Fprintf(w, "  not in the rollout: %s\n", x)
	}
}

// fleetApprove approves a rollout: with the server alone when its
// director signs alone, else by signing every device's staged targets
// with the admin's own key after checking each.
func fleetApprove(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet approve", "hpctl fleet approve ID [--key FILE] [--yes] --server URL --pki DIR --session FILE", stderr)
	var af adminFlags
	af.register(fs)
	keyFile := fs.String("approver-key", "", "your approval key (PKCS#8 PEM, mode 0600): needed when the director wants admins' signatures")
	yes := fs.Bool("yes", false, "sign without asking (after the checks pass)")
	showDoc := fs.Bool("show-config", false, "print the configuration document being rolled out")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !api.ValidRolloutID(pos[0]) {
		return usagef("fleet approve: want one rollout ID (ro- and 32 hex digits)")
	}
	id := pos[0]
	var key *tufrepo.Key
	if *keyFile != "" {
		if key, err = tufrepo.LoadKey(*keyFile); err != nil {
			return err
		}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	v, err := c.Rollout(ctx, id)
	if err != nil {
		return err
	}
	printRollout(stdout, v)
	if *showDoc && v.Config != "" {
		fmt.Fprintf(stdout, "--- configuration document ---\n%s--- end ---\n", v.Config)
	}
	if v.Signatures == 0 {
		if !*yes && !confirm(stdout, "approve this rollout") {
			return errors.New("not approved")
		}
		out, err := c.ApproveRollout(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "approved: rollout %s is %s\n", out.ID, out.State)
		return nil
	}
	if key == nil {
		return usagef("fleet approve: rollout %s needs admins' signatures: give --approver-key FILE", id)
	}
	sigs, summary, err := signStaged(ctx, c, v, key, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, summary)
	if !*yes && !confirm(stdout, fmt.Sprintf("sign %d device(s)' targets with key %s", len(sigs), key.ID()[:16])) {
		return errors.New("not signed")
	}
	var out *api.Rollout
	for off := 0; off < len(sigs) || off == 0; off += api.MaxSignatureUpload {
		batch := sigs[off:min(off+api.MaxSignatureUpload, len(sigs))]
		if len(batch) == 0 {
			break
		}
		if out, err = c.SignRollout(ctx, id, api.SignatureUpload{KeyID: key.ID(), Devices: batch}); err != nil {
			return err
		}
	}
	if out == nil {
		return errors.New("nothing to sign: every device is unchanged by the rollout")
	}
	fmt.Fprintf(stdout, "signed %d device(s): rollout %s is %s\n", len(sigs), out.ID, out.State)
	return nil
}

func confirm(w io.Writer, what string) bool {
	fmt.Fprintf(w, "%s? type yes: ", what)
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 64)).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "yes"
}

// signStaged reads every staged device of the rollout, checks that each
// targets says exactly what the rollout says (the device, its firmware,
// its document composed from the rollout's and the device's overrides,
// the revert naming what the device has now, versions that follow) and
// signs both targets with key. It returns the signatures and what was
// checked, for the admin to read.
func signStaged(ctx context.Context, c *client.Client, v *api.Rollout, key *tufrepo.Key, now time.Time) ([]api.DeviceSignatures, string, error) {
	var sigs []api.DeviceSignatures
	var b strings.Builder
	total, unchanged, withOverride := 0, 0, 0
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			return nil, "", errors.New("staged pages do not end")
		}
		pg, err := c.Staged(ctx, v.ID, after)
		if err != nil {
			return nil, "", err
		}
		for _, sd := range pg.Devices {
			total++
			if sd.Unchanged {
				unchanged++
				continue
			}
			if sd.Override != "" {
				withOverride++
			}
			if err := checkStaged(v, sd, now); err != nil {
				return nil, "", fmt.Errorf("refusing to sign: device %s: %w", sd.Device, err)
			}
			fw, err := tufrepo.SignDetached(sd.Forward.Targets, key)
			if err != nil {
				return nil, "", err
			}
			rv, err := tufrepo.SignDetached(sd.Revert.Targets, key)
			if err != nil {
				return nil, "", err
			}
			sigs = append(sigs, api.DeviceSignatures{Device: sd.Device, Forward: fw.Sig, Revert: rv.Sig})
		}
		if pg.Next == "" {
			want := 0
			for _, r := range v.Rings {
				want += r.Devices
			}
			if total != want || pg.Total != want {
				return nil, "", fmt.Errorf("refusing to sign: %d staged devices, the rollout's rings hold %d", total, want)
			}
			break
		}
		after = pg.Next
	}
	fmt.Fprintf(&b, "checked %d device(s): %d to sign (each: the rollout's change and its revert), %d unchanged by it, %d with their own overrides\n",
		total, len(sigs), unchanged, withOverride)
	return sigs, b.String(), nil
}

// checkStaged is the approver's check of one device's staged targets.
func checkStaged(v *api.Rollout, sd api.StagedDevice, now time.Time) error {
	if sd.Forward == nil || sd.Revert == nil {
		return errors.New("nothing staged")
	}
	fwd, err := tufrepo.ParseDirectorTargets(sd.Forward.Targets)
	if err != nil {
		return err
	}
	rev, err := tufrepo.ParseDirectorTargets(sd.Revert.Targets)
	if err != nil {
		return err
	}
	switch {
	case fwd.DeviceID != sd.Device || rev.DeviceID != sd.Device:
		return fmt.Errorf("targets name devices %s and %s", fwd.DeviceID, rev.DeviceID)
	case rev.Version != fwd.Version+1:
		return fmt.Errorf("revert targets v%d does not follow v%d", rev.Version, fwd.Version)
	case !fwd.Expires.After(now) || !rev.Expires.After(now):
		return errors.New("staged targets expired")
	}
	if err := checkDoc("forward", fwd, sd.Forward.Config); err != nil {
		return err
	}
	if err := checkDoc("revert", rev, sd.Revert.Config); err != nil {
		return err
	}
	switch v.Kind {
	case "firmware":
		f, want := fwd.Firmware, v.Firmware
		if f == nil || want == nil || f.Name != want.Name || f.Version != want.Version || f.Length != want.Length ||
			hex.EncodeToString(f.SHA256[:]) != want.SHA256 || f.SecurityVersion != want.SecurityVersion || f.Compatible != want.Compatible {
			return fmt.Errorf("forward targets name firmware %v, the rollout %v", f, want)
		}
		if !bytes.Equal(sd.Forward.Config, sd.Revert.Config) {
			return errors.New("a firmware rollout changes the configuration document")
		}
	case "config":
		if !sameFirmware(fwd.Firmware, rev.Firmware) {
			return errors.New("a configuration rollout changes the firmware")
		}
		sum := sha256.Sum256([]byte(v.Config))
		if hex.EncodeToString(sum[:]) != v.ConfigSHA256 {
			return errors.New("the rollout's document does not match its hash")
		}
		// The rollout's document over the device's own overrides; for a
		// device-scope rollout, the group's under the rollout's.
		group, own := v.Config, sd.Override
		if v.Device != "" {
			group, own = sd.GroupConfig, v.Config
		}
		want, err := composed(group, own)
		if err != nil {
			return err
		}
		got, err := configdoc.StripSealed(sd.Forward.Config)
		if err != nil {
			return fmt.Errorf("forward document: %w", err)
		}
		if !bytes.Equal(got, want) {
			return errors.New("the forward document is not the rollout's composed with the device's overrides")
		}
	default:
		return fmt.Errorf("rollout kind %q", v.Kind)
	}
	return nil
}

// checkDoc checks a staged document against the length and hash its
// targets name.
func checkDoc(which string, t tufrepo.DirectorTargets, doc []byte) error {
	if t.ConfigLength == 0 {
		if doc != nil {
			return fmt.Errorf("%s: a document is staged its targets do not name", which)
		}
		return nil
	}
	if int64(len(doc)) != t.ConfigLength || sha256.Sum256(doc) != t.ConfigSHA256 {
		return fmt.Errorf("%s: the document is not the one its targets name", which)
	}
	return nil
}

func sameFirmware(a, b *tufrepo.Firmware) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// composed is the document the phone should get: the group's document
// composed with the device's own, as the director composes it (either may
// be empty, not both).
func composed(group, override string) ([]byte, error) {
	var g *configdoc.Doc
	var err error
	if group != "" {
		if g, err = configdoc.Parse([]byte(group)); err != nil {
			return nil, fmt.Errorf("the group's document: %w", err)
		}
	}
	var d *configdoc.Doc
	if override != "" {
		if d, err = configdoc.Parse([]byte(override)); err != nil {
			return nil, fmt.Errorf("the device's overrides: %w", err)
		}
	}
	doc, err := configdoc.Compose(g, d)
	if err != nil {
		return nil, err
	}
	return doc.Encode()
}

// fleetApproverKey is `hpctl fleet approver-key register|list`.
func fleetApproverKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "register" && args[0] != "list") {
		return usagef("fleet approver-key: want register or list")
	}
	sub := args[0]
	fs := cli.NewFlagSet("fleet approver-key "+sub, "hpctl fleet approver-key "+sub+" [--approver-key FILE] --server URL --pki DIR --session FILE", stderr)
	var af adminFlags
	af.register(fs)
	keyFile := fs.String("approver-key", "", "your approval key (PKCS#8 PEM, mode 0600; hpctl repo keygen)")
	name := fs.String("admin", "", "your admin name (default: your certificate's)")
	pos, err := cli.Parse(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("fleet approver-key %s: no arguments", sub)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	list, err := c.ApproverKeys(ctx)
	if err != nil {
		return err
	}
	if sub == "list" {
		fmt.Fprintf(stdout, "fleet %s: every device's targets needs %d admin signature(s)\n", list.Fleet, list.Needed)
		for _, k := range list.Keys {
			fmt.Fprintf(stdout, "  %s  %s  registered %s\n", k.KeyID, k.Admin, k.RegisteredAt.Format(time.RFC3339))
		}
		return nil
	}
	if *keyFile == "" {
		return usagef("fleet approver-key register: --approver-key FILE is required")
	}
	key, err := tufrepo.LoadKey(*keyFile)
	if err != nil {
		return err
	}
	admin := *name
	if admin == "" {
		if admin, err = af.certName(); err != nil {
			return err
		}
	}
	der, err := key.PublicDER()
	if err != nil {
		return err
	}
	proof, err := tufrepo.SignProof(key, tufrepo.ProofMessage(list.Fleet, admin, key.ID()))
	if err != nil {
		return err
	}
	k, err := c.RegisterApproverKey(ctx, api.ApproverKeyRequest{PublicKey: der, Proof: proof})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "approval key %s registered for %s\n", k.KeyID, k.Admin)
	return nil
}
