package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/internal/cli"
)

// Bounds on a vendor manifest.
const (
	maxManifestBytes   = 256 << 20
	maxManifestEntries = 1_000_000
)

func fleetUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: hpctl fleet <command> [flags] [args]

commands:
  init DIR                  create a fleet PKI in DIR: device, server and admin CAs,
                            the server's certificate, one admin certificate
  device import FILE        put the devices of a vendor manifest (JSON or CSV:
                            serial, ek_sha256, model, group) on the allow-list
  inventory [--json]        list the fleet's devices
  device show ID [--json]   one device with its certificates and report history
  device revoke ID          revoke its certificates (CRL) and stop its renewals
  device retire ID          decommission it: revoked, told to wipe at check-in
  setting get|set|unset KEY [VALUE]
                            fleet settings (min_security_version)
  crl [-o FILE]             fetch the device CA's CRL (DER)
  config set --group G|--device ID FILE
                            set group defaults or a device's overrides (TOML, the
                            phone's config schema); refused with the phone's reason
                            when a device's composition does not validate
  config show|delete --group G|--device ID
  firmware assign --group G|--device ID NAME
                            assign a bundle the image repository lists (hpctl repo add)
  firmware clear|show --group G|--device ID
  device provision ID       what the director publishes for it (versions, accounts)
  device rotate ID          new registrar passwords for its accounts now
  login --session FILE [--password-file FILE] [--totp CODE]
                            log in (password and TOTP code; asked on the terminal
                            when not given) and keep the session token in FILE (0600)
  rollout create --group G (--firmware NAME | --config FILE) --ring SPEC...
                            start a staged rollout (pending a second admin's approval);
                            SPEC is NAME=dev-...,dev-... (canaries) or [NAME=]PERCENT%
                            (cumulative; the last ring 100%)
  rollout list|show ID|devices ID
  rollout approve ID        approve another admin's rollout (same as fleet approve)
  rollout halt|resume|abort ID [--reason TEXT]
  approve ID [--key FILE]   approve a rollout: when the director needs admins'
                            signatures, check every staged targets, show what is
                            signed, sign with your own key (FILE, mode 0600) and upload
  approver-key register --key FILE
                            register your approval key (a targets key of the director
                            root: hpctl repo keygen), proving you hold it
  approver-key list
  audit keygen --origin NAME FILE
                            make the audit log's signing key (FILE, FILE.pub)
  audit export [-o FILE]    the audit trail as JSON lines
  audit verify --trust FILE.pub EXPORT [--collector FILE]
                            check an export: every entry sealed, every checkpoint
                            consistent, and against the collector's checkpoints
  findings [--device ID] [--rule RULE] [--json]
                            the anomaly detector's findings, what their responses
                            did, and the blocks and quarantines in force
  device events ID [--json] the device's event journal as the fleet holds it: its
                            cursor, gaps (missing, truncated, replaced) and records
  device lift ID block_outbound|quarantine
                            end a block or quarantine early

every command but init talks to the server as an admin:
  --server URL (https://NAME:PORT) and --pki DIR (server-ca.crt, admin.crt,
  admin.key as fleet init wrote them), or --server-ca, --cert and --key;
  rollouts, approvals and the audit trail also need --session FILE.`)
}

func cmdFleet(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fleetUsage(stderr)
		return usagef("fleet: missing command")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "--help", "-help", "help":
		fleetUsage(stdout)
		return nil
	case "init":
		return fleetInit(rest, stdout, stderr)
	case "inventory":
		return fleetInventory(rest, stdout, stderr)
	case "setting":
		return fleetSetting(rest, stdout, stderr)
	case "crl":
		return fleetCRL(rest, stdout, stderr)
	case "config":
		return fleetConfig(rest, stdout, stderr)
	case "firmware":
		return fleetFirmware(rest, stdout, stderr)
	case "login":
		return fleetLogin(rest, stdout, stderr)
	case "rollout":
		return fleetRollout(rest, stdout, stderr)
	case "approve":
		return fleetApprove(rest, stdout, stderr)
	case "approver-key":
		return fleetApproverKey(rest, stdout, stderr)
	case "audit":
		return fleetAudit(rest, stdout, stderr)
	case "findings":
		return fleetFindings(rest, stdout, stderr)
	case "device":
		if len(rest) == 0 {
			return usagef("fleet device: want import, show, revoke or retire")
		}
		switch rest[0] {
		case "import":
			return fleetImport(rest[1:], stdout, stderr)
		case "show":
			return fleetShow(rest[1:], stdout, stderr)
		case "revoke", "retire":
			return fleetStateChange(rest[0], rest[1:], stdout, stderr)
		case "provision", "rotate":
			return fleetProvision(rest[0], rest[1:], stdout, stderr)
		case "events":
			return fleetDeviceEvents(rest[1:], stdout, stderr)
		case "lift":
			return fleetLift(rest[1:], stdout, stderr)
		}
		return usagef("fleet device: unknown command %q, want import, show, revoke or retire", rest[0])
	}
	fleetUsage(stderr)
	return usagef("fleet: unknown command %q", sub)
}

func fleetInit(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet init", "hpctl fleet init DIR --org NAME --server-name NAME [--server-ip IP]... [--admin NAME]", stderr)
	org := fs.String("org", "", "organization name in every certificate (required)")
	var names, ips multiFlag
	fs.Var(&names, "server-name", "the server's DNS name (repeatable; phones pin the first)")
	fs.Var(&ips, "server-ip", "the server's IP address (repeatable)")
	admin := fs.String("admin", "admin", "the first admin certificate's name")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("fleet init: want one DIR")
	}
	if *org == "" || len(names)+len(ips) == 0 {
		return usagef("fleet init: --org and a --server-name or --server-ip are required")
	}
	var addrs []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return usagef("fleet init: --server-ip %q is not an IP address", s)
		}
		addrs = append(addrs, ip)
	}
	if err := ca.Init(pos[0], ca.InitOptions{Organization: *org, ServerNames: names, ServerIPs: addrs, AdminName: *admin}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fleet PKI created in %s (keys mode 0600):\n", pos[0])
	for _, f := range []struct{ name, what string }{
		{ca.DeviceCACertFile, "device CA: issues phone certificates, signs the CRL (the registrar trusts it)"},
		{ca.DeviceCAKeyFile, "device CA key: hpfleet needs it; keep it on the server only"},
		{ca.ServerCACertFile, "server CA: phones pin it"},
		{ca.ServerCertFile + ", " + ca.ServerKeyFile, "hpfleet's TLS certificate and key"},
		{ca.ServerCAKeyFile + ", " + ca.AdminCAKeyFile, "keep offline: they only issue new server or admin certificates"},
		{ca.AdminCACertFile, "admin CA: hpfleet trusts it for admin endpoints"},
		{ca.AdminCertFile + ", " + ca.AdminKeyFile, "the first admin's client certificate (hpctl fleet --pki)"},
	} {
		fmt.Fprintf(stdout, "  %-34s %s\n", f.name, f.what)
	}
	return nil
}

// adminFlags are the connection flags of every admin command.
type adminFlags struct {
	server, serverName, pki, serverCA, cert, key, session string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.server, "server", "", "fleet server, https://NAME[:PORT] (required)")
	fs.StringVar(&a.serverName, "server-name", "", "name the server's certificate must carry (default: the URL's host)")
	fs.StringVar(&a.pki, "pki", "", "fleet PKI directory (server-ca.crt, admin.crt, admin.key)")
	fs.StringVar(&a.serverCA, "server-ca", "", "server CA certificate (PEM; default PKI/server-ca.crt)")
	fs.StringVar(&a.cert, "cert", "", "admin client certificate (PEM; default PKI/admin.crt)")
	fs.StringVar(&a.key, "key", "", "admin client key (PEM, mode 0600; default PKI/admin.key)")
	fs.StringVar(&a.session, "session", "", "file holding the admin's session token (mode 0600; after logging in with password and second factor): rollouts, approvals and the audit trail need it")
}

func (a *adminFlags) client() (*client.Client, error) {
	if a.server == "" {
		return nil, usagef("--server is required")
	}
	or := func(v, def string) (string, error) {
		if v != "" {
			return v, nil
		}
		if a.pki == "" {
			return "", usagef("--pki or --%s is required", strings.TrimSuffix(strings.ReplaceAll(def, ".crt", ""), ".key"))
		}
		return filepath.Join(a.pki, def), nil
	}
	caFile, err := or(a.serverCA, ca.ServerCACertFile)
	if err != nil {
		return nil, err
	}
	certFile, err := or(a.cert, ca.AdminCertFile)
	if err != nil {
		return nil, err
	}
	keyFile, err := or(a.key, ca.AdminKeyFile)
	if err != nil {
		return nil, err
	}
	roots, err := ca.LoadPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("server CA: %w", err)
	}
	if _, err := ca.LoadKey(keyFile); err != nil {
		return nil, fmt.Errorf("admin %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	c, err := client.New(client.Config{URL: a.server, ServerName: a.serverName, Roots: roots, Certificate: &cert})
	if err != nil || a.session == "" {
		return c, err
	}
	tok, err := readSession(a.session)
	if err != nil {
		return nil, err
	}
	return c.WithSession(tok, SessionUserAgent)
}

// signalContext ends on Ctrl-C.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func fleetImport(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet device import", "hpctl fleet device import FILE [--format json|csv] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	format := fs.String("format", "", "json or csv (default: by the file's extension)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("fleet device import: want one FILE")
	}
	entries, err := readManifest(pos[0], *format)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var sum api.ImportResponse
	for off := 0; off < len(entries); off += api.MaxImportEntries {
		batch := entries[off:min(off+api.MaxImportEntries, len(entries))]
		r, err := c.Import(ctx, batch)
		if err != nil {
			return fmt.Errorf("import entries %d..%d (earlier batches are in): %w", off, off+len(batch)-1, err)
		}
		sum.Added, sum.Updated, sum.Unchanged = sum.Added+r.Added, sum.Updated+r.Updated, sum.Unchanged+r.Unchanged
	}
	fmt.Fprintf(stdout, "imported %d devices: %d added, %d updated, %d unchanged\n", len(entries), sum.Added, sum.Updated, sum.Unchanged)
	return nil
}

// manifestEntry is one device of a vendor manifest; ek_cert_sha256 is
// accepted for ek_sha256.
type manifestEntry struct {
	Serial       string `json:"serial"`
	EKSHA256     string `json:"ek_sha256"`
	EKCertSHA256 string `json:"ek_cert_sha256"`
	Model        string `json:"model"`
	Group        string `json:"group"`
}

// readManifest parses a vendor manifest: JSON (an array of entries, or
// {"devices": [...]}) or CSV with a header naming serial, ek_sha256 (or
// ek_cert_sha256), model and group in any order. The server validates
// each field.
func readManifest(path, format string) ([]api.AllowEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	r := io.LimitReader(f, maxManifestBytes+1)
	if format == "" {
		format = strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	}
	var raw []manifestEntry
	switch format {
	case "json":
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if len(b) > maxManifestBytes {
			return nil, fmt.Errorf("manifest %s: over %d bytes", path, maxManifestBytes)
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			var wrapped struct {
				Devices []manifestEntry `json:"devices"`
			}
			if err2 := json.Unmarshal(b, &wrapped); err2 != nil || wrapped.Devices == nil {
				return nil, fmt.Errorf("manifest %s: %w", path, err)
			}
			raw = wrapped.Devices
		}
	case "csv":
		raw, err = readCSVManifest(bufio.NewReader(r))
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", path, err)
		}
	default:
		return nil, usagef("manifest %s: format %q, want json or csv (--format)", path, format)
	}
	if len(raw) == 0 || len(raw) > maxManifestEntries {
		return nil, fmt.Errorf("manifest %s: %d devices, want 1..%d", path, len(raw), maxManifestEntries)
	}
	out := make([]api.AllowEntry, 0, len(raw))
	for i, e := range raw {
		ek := e.EKSHA256
		if ek == "" {
			ek = e.EKCertSHA256
		}
		if e.Serial == "" || ek == "" || e.Model == "" || e.Group == "" {
			return nil, fmt.Errorf("manifest %s: device %d: serial, ek_sha256, model and group are required", path, i+1)
		}
		out = append(out, api.AllowEntry{Serial: e.Serial, EKSHA256: strings.ToLower(ek), Model: e.Model, Group: e.Group})
	}
	return out, nil
}

func readCSVManifest(r io.Reader) ([]manifestEntry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	if _, ok := col["ek_sha256"]; !ok {
		if i, ok := col["ek_cert_sha256"]; ok {
			col["ek_sha256"] = i
		}
	}
	for _, need := range []string{"serial", "ek_sha256", "model", "group"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("header %q lacks column %s", head, need)
		}
	}
	var out []manifestEntry
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(out) >= maxManifestEntries {
			return nil, fmt.Errorf("more than %d devices", maxManifestEntries)
		}
		get := func(name string) string {
			if i := col[name]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		out = append(out, manifestEntry{Serial: get("serial"), EKSHA256: get("ek_sha256"), Model: get("model"), Group: get("group")})
	}
}

func fleetInventory(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet inventory", "hpctl fleet inventory [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (one array of devices)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("fleet inventory: unexpected arguments %q", pos)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	devices := []api.Device{}
	after := ""
	for {
		p, err := c.Inventory(ctx, after, 0)
		if err != nil {
			return err
		}
		devices = append(devices, p.Devices...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(devices)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSERIAL\tMODEL\tGROUP\tSTATE\tFIRMWARE\tSECVER\tLOCKDOWN\tCONFIG\tLAST SEEN\tCERT EXPIRES")
	for _, d := range devices {
		fw, sv, ld := "-", "-", "-"
		if d.Firmware != "" {
			fw, sv = d.Firmware, fmt.Sprint(d.SecurityVersion)
		}
		if d.LockdownOK != nil {
			ld = map[bool]string{true: "ok", false: "DRIFT"}[*d.LockdownOK]
		}
		cfg := "-"
		if d.ConfigVersion > 0 {
			cfg = fmt.Sprintf("v%d", d.ConfigVersion)
		}
		if d.Stale {
			cfg += " STALE(" + d.StaleRole + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Serial, d.Model, d.Group, d.State, fw, sv, ld, cfg,
			d.LastSeen.UTC().Format(time.RFC3339), d.CertNotAfter.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d devices\n", len(devices))
	return nil
}

func fleetShow(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet device show", "hpctl fleet device show ID [--json] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !api.ValidDeviceID(pos[0]) {
		return usagef("fleet device show: want one device ID (dev- and 32 hex digits)")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	d, err := c.Device(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	v := d.Device
	fmt.Fprintf(stdout, "device     %s\nserial     %s\nmodel      %s\ngroup      %s\nstate      %s (since %s)\nEK sha256  %s\nenrolled   %s\nlast seen  %s\n",
		v.ID, v.Serial, v.Model, v.Group, v.State, v.StateChangedAt.UTC().Format(time.RFC3339), v.EKSHA256,
		v.EnrolledAt.UTC().Format(time.RFC3339), v.LastSeen.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "\ncertificates (newest first):\n")
	for _, ct := range d.Certs {
		rev := ""
		if ct.RevokedAt != nil {
			rev = fmt.Sprintf("  REVOKED %s reason %d", ct.RevokedAt.UTC().Format(time.RFC3339), ct.Reason)
		}
		fmt.Fprintf(stdout, "  %s  %s .. %s%s\n", ct.Serial, ct.NotBefore.UTC().Format(time.RFC3339), ct.NotAfter.UTC().Format(time.RFC3339), rev)
	}
	fmt.Fprintf(stdout, "\nreports (newest first, %d):\n", len(d.Reports))
	for _, r := range d.Reports {
		ld := "ok"
		if !r.Report.Lockdown.OK {
			ld = "DRIFT: " + strings.Join(r.Report.Lockdown.Findings, "; ")
		}
		fmt.Fprintf(stdout, "  %s  firmware %s (security %d)  boot %s left %d good %v  lockdown %s  uptime %ds\n",
			r.ReceivedAt.UTC().Format(time.RFC3339), r.Report.Firmware.Version, r.Report.Firmware.SecurityVersion,
			r.Report.Boot.Slot, r.Report.Boot.AttemptsLeft, r.Report.Boot.MarkedGood, ld, r.Report.UptimeSeconds)
	}
	return nil
}

func fleetStateChange(what string, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet device "+what, "hpctl fleet device "+what+" ID [--reason R] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	reason := fs.String("reason", "", "unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation or privilege_withdrawn")
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
	change := c.Revoke
	if what == "retire" {
		change = c.Retire
	}
	d, err := change(ctx, pos[0], *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device %s (%s) is %s; its certificates are on the CRL\n", d.ID, d.Serial, d.State)
	return nil
}

func fleetSetting(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet setting", "hpctl fleet setting get|set|unset KEY [VALUE] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) < 2 || (pos[0] == "set") != (len(pos) == 3) || len(pos) > 3 {
		return usagef("fleet setting: want get KEY, set KEY VALUE or unset KEY")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	switch pos[0] {
	case "get":
		v, err := c.Setting(ctx, pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
	case "set":
		if err := c.SetSetting(ctx, pos[1], pos[2]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s = %s\n", pos[1], pos[2])
	case "unset":
		if err := c.DeleteSetting(ctx, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s unset\n", pos[1])
	default:
		return usagef("fleet setting: %q, want get, set or unset", pos[0])
	}
	return nil
}

func fleetCRL(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet crl", "hpctl fleet crl [-o FILE] [--pem] --server URL --pki DIR", stderr)
	var af adminFlags
	af.register(fs)
	out := fs.String("o", "", "write the CRL here (default stdout)")
	asPEM := fs.Bool("pem", false, "PEM instead of DER (what Kamailio's crl_list reads)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("fleet crl: unexpected arguments %q", pos)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	der, err := c.CRL(ctx)
	if err != nil {
		return err
	}
	// The CRL is checked against the device CA by whoever uses it; here
	// it came over TLS from the pinned server.
	b := der
	if *asPEM {
		b = pemBlock("X509 CRL", der)
	}
	if *out == "" {
		_, err := stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("write CRL: %w", err)
	}
	fmt.Fprintf(stdout, "CRL (%d bytes) written to %s\n", len(der), *out)
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
