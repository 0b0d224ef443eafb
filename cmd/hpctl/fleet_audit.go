package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/internal/cli"
)

// maxAuditExport bounds an audit export hpctl downloads or reads.
const maxAuditExport = 4 << 30

// maxCollectorFile bounds the collector's copy of the checkpoints.
const maxCollectorFile = 256 << 20

// certName is the admin certificate's common name, lowercase: the admin's
// login name.
func (a *adminFlags) certName() (string, error) {
	file := a.cert
	if file == "" {
		if a.pki == "" {
			return "", usagef("--pki or --cert is required")
		}
		file = filepath.Join(a.pki, ca.AdminCertFile)
	}
	c, err := ca.LoadCertificate(file)
	if err != nil {
		return "", err
	}
	return strings.ToLower(c.Subject.CommonName), nil
}

// fleetAudit is `hpctl fleet audit keygen|export|verify`.
func fleetAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("fleet audit: want keygen, export or verify")
	}
	switch args[0] {
	case "keygen":
		return auditKeygen(args[1:], stdout, stderr)
	case "export":
		return auditExport(args[1:], stdout, stderr)
	case "verify":
		return auditVerify(args[1:], stdout, stderr)
	}
	return usagef("fleet audit: unknown command %q, want keygen, export or verify", args[0])
}

func auditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet audit keygen", "hpctl fleet audit keygen --origin NAME FILE", stderr)
	origin := fs.String("origin", "", "the log's name in its checkpoints, e.g. fleet.example.com/audit (required)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *origin == "" {
		return usagef("fleet audit keygen: want --origin and one FILE")
	}
	vkey, err := audit.WriteKeyFiles(pos[0], pos[0]+".pub", *origin)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit key written to %s (mode 0600; hpfleet --audit-key), public key to %s:\n%s\n", pos[0], pos[0]+".pub", vkey)
	return nil
}

func auditExport(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet audit export", "hpctl fleet audit export [-o FILE] --server URL --pki DIR --session FILE", stderr)
	var af adminFlags
	af.register(fs)
	out := fs.String("o", "", "write the export to FILE (default: stdout)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("fleet audit export: no arguments")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	w := stdout
	var f *os.File
	if *out != "" {
		if f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := c.ExportAudit(ctx, w, maxAuditExport)
	if err != nil {
		return err
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "audit export: %d bytes written to %s\n", n, *out)
	}
	return nil
}

func auditVerify(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet audit verify", "hpctl fleet audit verify --trust FILE.pub [--collector FILE] EXPORT", stderr)
	var trusts multiFlag
	fs.Var(&trusts, "trust", "the audit key's public form (FILE.pub of hpctl fleet audit keygen; repeatable for rotated keys; required)")
	collector := fs.String("collector", "", "the syslog collector's copy of the checkpoints (its log file)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(trusts) == 0 {
		return usagef("fleet audit verify: want --trust and one EXPORT file (- for stdin)")
	}
	var vkeys []string
	for _, t := range trusts {
		tr, err := os.ReadFile(t)
		if err != nil {
			return err
		}
		vkeys = append(vkeys, strings.TrimSpace(string(tr)))
	}
	trust, err := audit.NewTrust(vkeys...)
	if err != nil {
		return err
	}
	var opts []audit.VerifyOption
	if *collector != "" {
		f, err := os.Open(*collector)
		if err != nil {
			return err
		}
		notes, err := audit.ParseSyslogCheckpoints(io.LimitReader(f, maxCollectorFile))
		f.Close()
		if err != nil {
			return fmt.Errorf("collector's checkpoints: %w", err)
		}
		opts = append(opts, audit.WithOutsideCheckpoints(notes...))
		fmt.Fprintf(stdout, "%d checkpoint(s) from the collector\n", len(notes))
	}
	var r io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	rep, err := audit.Verify(io.LimitReader(r, maxAuditExport), trust, opts...)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.Text())
	if !rep.OK() {
		return fmt.Errorf("audit log NOT verified: %d problem(s)", len(rep.Problems)+rep.MoreProblems)
	}
	fmt.Fprintln(stdout, "audit log verified")
	return nil
}
