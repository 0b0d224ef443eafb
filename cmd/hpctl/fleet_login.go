package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
	"github.com/hardphone/hardphone/fleet/console/consoleclient"
	"github.com/hardphone/hardphone/internal/cli"
	"golang.org/x/term"
)

// maxSecretLine bounds a password or code read from a file or stdin.
const maxSecretLine = 1 << 10

// fleetLogin logs an admin in to the console's JSON API (client
// certificate, password, TOTP code) and writes the session token to the
// --session file (mode 0600), which the rollout, approval and audit
// commands then send. The password comes from --password-file or is asked
// for on the terminal (never a flag: it would show in ps and the shell's
// history); the code from --totp or the terminal.
func fleetLogin(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fleet login", "hpctl fleet login --session FILE --server URL --pki DIR [--name NAME] [--password-file FILE] [--totp CODE]", stderr)
	var af adminFlags
	af.register(fs)
	name := fs.String("name", "", "admin login name (default: the client certificate's common name)")
	pwFile := fs.String("password-file", "", "file holding the password (mode 0600; - for stdin; default: ask on the terminal)")
	code := fs.String("totp", "", "the current TOTP code (default: ask on the terminal)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("fleet login: no arguments, only flags")
	}
	if af.session == "" {
		return usagef("fleet login: --session FILE is required (where the token goes)")
	}
	if af.server == "" {
		return usagef("--server is required")
	}
	caFile, certFile, keyFile := af.serverCA, af.cert, af.key
	for _, f := range []struct {
		v   *string
		def string
	}{{&caFile, ca.ServerCACertFile}, {&certFile, ca.AdminCertFile}, {&keyFile, ca.AdminKeyFile}} {
		if *f.v == "" {
			if af.pki == "" {
				return usagef("--pki or --server-ca, --cert and --key are required")
			}
			*f.v = filepath.Join(af.pki, f.def)
		}
	}
	roots, err := ca.LoadPool(caFile)
	if err != nil {
		return fmt.Errorf("server CA: %w", err)
	}
	if _, err := ca.LoadKey(keyFile); err != nil {
		return fmt.Errorf("admin %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("admin certificate: %w", err)
	}
	if *name == "" {
		leaf, err := ca.LoadCertificates(certFile)
		if err != nil || len(leaf) == 0 {
			return fmt.Errorf("admin certificate: %v", err)
		}
		*name = leaf[0].Subject.CommonName
	}
	c, err := consoleclient.New(consoleclient.Config{URL: af.server, ServerName: af.serverName, Roots: roots, Certificate: &cert})
	if err != nil {
		return err
	}
	in := bufio.NewReader(os.Stdin)
	password, err := readSecret(*pwFile, "password for "+*name+": ", in, stderr)
	if err != nil {
		return fmt.Errorf("password: %w", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	res, err := c.Login(ctx, *name, password)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	switch res.Stage {
	case consoleapi.StageSecondFactor:
		if *code == "" {
			if *code, err = readSecret("", "TOTP code: ", in, stderr); err != nil {
				return fmt.Errorf("code: %w", err)
			}
		}
		if err := c.ProveTOTP(ctx, strings.TrimSpace(*code)); err != nil {
			return fmt.Errorf("login: second factor: %w", err)
		}
	case consoleapi.StageEnrol:
		if err := enrolTOTP(ctx, c, *name, *code, in, stdout, stderr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("login: the server wants %.32q next, which hpctl cannot do: use the web console", res.Stage)
	}
	if err := writeSession(af.session, c.SessionToken()); err != nil {
		// A session nobody can use: end it.
		_ = c.Logout(context.WithoutCancel(ctx))
		return err
	}
	fmt.Fprintf(stdout, "logged in as %s; session in %s (ends after 15 minutes idle or 8 hours)\n", *name, af.session)
	return nil
}

// enrolTOTP enrols the admin's first second factor: it shows the new TOTP
// secret and its otpauth URI (for an authenticator app), then asks for a
// code made from it to confirm. The code cannot come from --totp: it does
// not exist before the secret is shown.
func enrolTOTP(ctx context.Context, c *consoleclient.Client, name, code string, in *bufio.Reader, stdout, stderr io.Writer) error {
	if code != "" {
		return usagef("fleet login: %s has no second factor yet: run without --totp to enrol one (the code is asked for after the secret is shown)", name)
	}
	en, err := c.EnrolTOTP(ctx)
	if err != nil {
		return fmt.Errorf("login: TOTP enrolment: %w", err)
	}
	// The secret is shown once, to the admin in front of this terminal:
	// it is what the authenticator app needs.
	fmt.Fprintf(stdout, "%s has no second factor yet: add this TOTP secret to an authenticator app\n  secret: %s\n  uri:    %s\n", name, en.Secret, en.URI)
	got, err := readSecret("", "code from the app to confirm: ", in, stderr)
	if err != nil {
		return fmt.Errorf("code: %w", err)
	}
	if err := c.ConfirmTOTP(ctx, strings.TrimSpace(got)); err != nil {
		return fmt.Errorf("login: TOTP enrolment not confirmed: %w", err)
	}
	fmt.Fprintf(stdout, "TOTP enrolled for %s\n", name)
	return nil
}

// readSecret reads one line: from file (mode 0600 unless "-", stdin),
// else from the terminal without echo, else (no terminal) from in.
func readSecret(file, prompt string, in *bufio.Reader, stderr io.Writer) (string, error) {
	var line string
	switch {
	case file == "-":
		l, err := readLine(in)
		if err != nil {
			return "", err
		}
		line = l
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return "", err
		}
		if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%s: mode %v, want a regular file of mode 0600", file, st.Mode())
		}
		l, err := readLine(bufio.NewReader(f))
		if err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		line = l
	case term.IsTerminal(int(os.Stdin.Fd())):
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if len(b) > maxSecretLine {
			return "", fmt.Errorf("longer than %d bytes", maxSecretLine)
		}
		line = string(b)
	default:
		l, err := readLine(in)
		if err != nil {
			return "", err
		}
		line = l
	}
	if line == "" {
		return "", errors.New("empty")
	}
	return line, nil
}

// readLine reads one line of at most maxSecretLine bytes, without its end.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if err == io.EOF && len(b) > 0 {
			break
		}
		if err != nil {
			return "", err
		}
		if c == '\n' {
			break
		}
		if len(b) >= maxSecretLine {
			return "", fmt.Errorf("longer than %d bytes", maxSecretLine)
		}
		b = append(b, c)
	}
	return strings.TrimSuffix(string(b), "\r"), nil
}

// writeSession writes the token to path, mode 0600, replacing it whole.
func writeSession(path, token string) error {
	if token == "" {
		return errors.New("session: the server gave no token")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".session-*")
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("session: %w", err)
	}
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("session: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}
