package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// maxCredInput bounds a value read from stdin.
const maxCredInput = 64 << 10

// credFlags are the flags every creds and identity subcommand takes: where
// the state is and what protects it.
type credFlags struct {
	config   string
	stateDir string
	tpm      string
	pcrs     string
}

func (c *credFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (TOML); its state_dir is used unless --state-dir is given")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory holding state.db")
	fs.StringVar(&c.tpm, "tpm", "", `key protector: a TPM device path, "swtpm:unix:PATH", "swtpm:tcp:HOST:PORT", or "software:KEKFILE" (weaker: KEK in a 0600 file); default: the config's credential_store, else `+system.DefaultTPM)
	fs.StringVar(&c.pcrs, "pcrs", "", `comma-separated PCRs (SHA-256 bank) to bind the KEK to, e.g. 7, or "none" to remove the binding; unset keeps the store's; TPM only`)
}

func (c *credFlags) dir() (string, error) {
	if c.stateDir != "" {
		return c.stateDir, nil
	}
	if c.config == "" {
		return "", errors.New("--state-dir or --config is required")
	}
	cfg, err := config.Load(c.config)
	if err != nil {
		return "", err
	}
	if cfg.StateDir == "" {
		return "", fmt.Errorf("config %s has no state_dir; give --state-dir", c.config)
	}
	return cfg.StateDir, nil
}

// spec is the protector: --tpm, else the config's credential_store, else
// the phone's TPM device.
func (c *credFlags) spec() (string, error) {
	if c.tpm != "" {
		return c.tpm, nil
	}
	if c.config != "" {
		cfg, err := config.Load(c.config)
		if err != nil {
			return "", err
		}
		if cfg.CredentialStore != "" {
			return cfg.CredentialStore, nil
		}
	}
	return system.DefaultTPM, nil
}

// credSpec is where the store lives and what protects it, from the flags.
func (c *credFlags) credSpec() (system.CredentialSpec, error) {
	dir, err := c.dir()
	if err != nil {
		return system.CredentialSpec{}, err
	}
	prot, err := c.spec()
	if err != nil {
		return system.CredentialSpec{}, err
	}
	spec := system.CredentialSpec{StateDir: dir, Protector: prot}
	switch c.pcrs {
	case "":
	case "none":
		spec.PCRs = []int{}
	default:
		for _, f := range strings.Split(c.pcrs, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return system.CredentialSpec{}, fmt.Errorf("--pcrs %q: %w", c.pcrs, err)
			}
			spec.PCRs = append(spec.PCRs, n)
		}
	}
	return spec, nil
}

// open opens the credential store. Warnings (a repaired record) go to
// stderr.
func (c *credFlags) open(stderr io.Writer) (*system.Credentials, error) {
	spec, err := c.credSpec()
	if err != nil {
		return nil, err
	}
	return system.OpenCredentials(spec, credLogger(stderr))
}

func credLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func credUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone creds <command> [flags] [args]

commands:
  set NAME    store a credential; the value is read from stdin, or prompted
              for without echo on a terminal (never from the command line)
  list        list credentials: name, version, last update, size, status
  rm NAME     delete a credential
  wipe --yes  factory reset: destroy the KEK, so every credential and the
              identity key become unreadable; NV counters are kept
  status      how the store is protected and what it holds

No command prints a credential value.

flags (every command):
  --state-dir DIR | --config FILE   where state.db lives
  --tpm SPEC                        /dev/tpmrm0 (default), swtpm:unix:PATH,
                                    swtpm:tcp:HOST:PORT, software:KEKFILE
  --pcrs LIST|none                  bind the KEK to these PCRs, or to none;
                                    unset keeps the store's binding (TPM only)`)
}

// cmdCreds implements `hardphone creds`.
func cmdCreds(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		credUsage(stderr)
		return usagef("missing command")
	}
	sub, rest := args[0], args[1:]
	wantArgs := 0
	switch sub {
	case "set", "rm":
		wantArgs = 1
	case "list", "wipe", "status":
	case "-h", "--help", "-help", "help":
		credUsage(stdout)
		return nil
	default:
		credUsage(stderr)
		return usagef("unknown command %q", sub)
	}
	line := "hardphone creds " + sub + " [--state-dir DIR | --config FILE] [--tpm SPEC] [--pcrs LIST]"
	switch sub {
	case "set":
		line = "hardphone creds set NAME [flags]   (the value comes from stdin, or a no-echo prompt)"
	case "rm":
		line = "hardphone creds rm NAME [flags]"
	case "wipe":
		line = "hardphone creds wipe --yes [flags]"
	}
	fs := cli.NewFlagSet("creds "+sub, line, stderr)
	var cf credFlags
	cf.register(fs)
	yes := false
	if sub == "wipe" {
		fs.BoolVar(&yes, "yes", false, "really wipe")
	}
	pos, err := parse(fs, rest, stdout, wantArgs, wantArgs)
	if err != nil {
		return err
	}
	if sub == "wipe" {
		return credsWipe(&cf, yes, stdout, stderr)
	}
	creds, err := cf.open(stderr)
	if err != nil {
		return err
	}
	defer creds.Close()
	switch sub {
	case "set":
		return credsSet(creds, pos[0], stdout, stderr)
	case "list":
		return credsList(creds, stdout)
	case "rm":
		if err := creds.Delete(pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", pos[0])
		return nil
	default:
		return credsStatus(creds, stdout)
	}
}

func credsSet(creds *system.Credentials, name string, stdout, stderr io.Writer) error {
	value, err := readSecret(name, stderr)
	if err != nil {
		return err
	}
	defer clear(value)
	if err := creds.Put(name, value); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored %s (%d bytes, %s-protected)\n", name, len(value), creds.Protection())
	return nil
}

// readSecret reads a value from stdin: prompted twice without echo on a
// terminal, otherwise all of stdin minus one trailing newline.
func readSecret(name string, stderr io.Writer) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprintf(stderr, "value for %s: ", name)
		v, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read value: %w", err)
		}
		fmt.Fprintf(stderr, "again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			clear(v)
			return nil, fmt.Errorf("read value: %w", err)
		}
		same := bytes.Equal(v, again)
		clear(again)
		if !same {
			clear(v)
			return nil, errors.New("the two values differ")
		}
		if len(v) == 0 {
			return nil, errors.New("empty value")
		}
		return v, nil
	}
	v, err := io.ReadAll(io.LimitReader(os.Stdin, maxCredInput+2))
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	v = bytes.TrimSuffix(v, []byte("\n"))
	v = bytes.TrimSuffix(v, []byte("\r"))
	if len(v) == 0 {
		return nil, errors.New("empty value on stdin")
	}
	if len(v) > maxCredInput {
		clear(v)
		return nil, fmt.Errorf("value on stdin longer than %d bytes", maxCredInput)
	}
	return v, nil
}

func credsList(creds *system.Credentials, stdout io.Writer) error {
	list, err := creds.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tUPDATED\tSIZE\tSTATUS")
	for _, in := range list {
		if in.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tCORRUPT: %v\n", in.Name, in.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\tok\n", in.Name, in.Version, in.Updated.UTC().Format(time.RFC3339), in.Size)
	}
	return tw.Flush()
}

func credsStatus(creds *system.Credentials, stdout io.Writer) error {
	st, err := creds.Status()
	if err != nil {
		return err
	}
	prot := st.Protection.String()
	if st.Protection.Weaker() {
		prot += " (WEAKER: the KEK is a file; anyone who reads it and state.db reads every secret)"
	}
	fmt.Fprintf(stdout, "protection:   %s\n", prot)
	if !st.Protection.Weaker() {
		fmt.Fprintf(stdout, "pcr policy:   %s\n", pcrList(st.PCRs))
		fmt.Fprintf(stdout, "generation:   %d (NV counter 0x%08x)\n", st.Generation, st.GenerationCounter)
	}
	fmt.Fprintf(stdout, "credentials:  %d\n", st.Credentials)
	fmt.Fprintf(stdout, "identity key: %t\n", st.Identity)
	fmt.Fprintf(stdout, "certificate:  %t\n", st.Certificate)
	return nil
}

func pcrList(pcrs []int) string {
	if len(pcrs) == 0 {
		return "none"
	}
	s := make([]string, len(pcrs))
	for i, p := range pcrs {
		s[i] = strconv.Itoa(p)
	}
	return "sha256:" + strings.Join(s, ",")
}

// credsWipe wipes without needing a working KEK, so it also resets a store
// that no longer opens (changed PCRs, damage).
func credsWipe(cf *credFlags, yes bool, stdout, stderr io.Writer) error {
	if !yes {
		return errors.New("wipe destroys every credential and the identity key for good; add --yes")
	}
	spec, err := cf.credSpec()
	if err != nil {
		return err
	}
	prot, err := system.WipeCredentials(spec, credLogger(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wiped: KEK destroyed (%s); every credential and the identity key are gone; NV counters kept\n", prot)
	return nil
}
