package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/internal/cli"
)

// bootstrapAdmins is how many security admins `hpfleet admin bootstrap`
// may create: the two people of the two-person rule. Every admin after
// them is proposed in the console and approved by another.
const bootstrapAdmins = 2

// adminCmd runs `hpfleet admin SUBCOMMAND`.
func adminCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "bootstrap" {
		return usagef("admin: want \"admin bootstrap\"")
	}
	return bootstrap(args[1:], stdout, stderr)
}

// bootstrap creates one of the first security admins, with a random
// initial password printed once and no second factor: the admin's first
// login (console or hpctl) can only enrol TOTP or a passkey. It refuses
// once bootstrapAdmins enabled security admins exist, and it needs the
// audit log (the creation is its first entry about the admin). With
// bbolt it runs while hpfleet serve does not (the files are locked).
func bootstrap(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("admin bootstrap", "hpfleet admin bootstrap (--data DIR | --postgres DSN) --ca-dir DIR --name NAME [--audit-key FILE]", stderr)
	var f serveFlags
	var name string
	fs.StringVar(&f.data, "data", "", "data directory of the embedded store (hpfleet serve must not be running)")
	fs.StringVar(&f.postgres, "postgres", "", "PostgreSQL DSN, or @FILE to read it from a file")
	fs.StringVar(&f.caDir, "ca-dir", "", "fleet PKI directory (for CA-DIR/audit.key)")
	fs.StringVar(&f.mgmt.auditKey, "audit-key", "", "audit log signing key (default CA-DIR/audit.key)")
	fs.StringVar(&name, "name", "", "the admin's login name (also the common name of the admin's client certificate)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 0:
		return usagef("admin bootstrap: unexpected arguments %q", pos)
	case (f.data == "") == (f.postgres == ""):
		return usagef("admin bootstrap: give exactly one of --data and --postgres")
	case f.caDir == "":
		return usagef("admin bootstrap: --ca-dir is required")
	case name == "":
		return usagef("admin bootstrap: --name is required")
	}
	f.mgmt.auditEvery, f.mgmt.rolloutEvery = time.Minute, time.Minute
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(f, log)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := f.mgmt.build(f, st, nil, nil, log)
	if err != nil {
		return err
	}
	defer m.close()
	if m.audit == nil {
		return fmt.Errorf("admin bootstrap: no audit key (hpctl fleet audit keygen writes CA-DIR/audit.key): the console refuses to run without the audit log")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Count and create under the store's exclusive lock: two bootstraps
	// at once (two shells, two replicas' hosts) must not both see "fewer
	// than two" and make three or four security admins.
	var ad *adminauth.Admin
	var password string
	if err := exclusive(m.admins, ctx, func(ctx context.Context) error {
		var err error
		ad, password, err = bootstrapOne(ctx, m, name)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "admin %s (id %s, role %s) created.\ninitial password (shown once): %s\n"+
		"The first login (console or hpctl, with a client certificate of an admin CA whose common name is %s) enrols TOTP.\n",
		ad.Name, ad.ID, ad.Role, password, ad.Name)
	return nil
}

// exclusive runs fn under the admin store's Exclusive when it has one
// (boltauth and pgauth do).
func exclusive(st any, ctx context.Context, fn func(context.Context) error) error {
	if x, ok := st.(adminauth.Exclusive); ok {
		return x.Exclusive(ctx, fn)
	}
	return fn(ctx)
}

// bootstrapOne is bootstrap's check-then-act: fewer than bootstrapAdmins
// enabled security admins, then one more, recorded in the audit log.
func bootstrapOne(ctx context.Context, m *mgmt, name string) (*adminauth.Admin, string, error) {
	admins, err := m.admins.ListAdmins(ctx, adminauth.MaxListAdmins)
	if err != nil {
		return nil, "", fmt.Errorf("admin bootstrap: %w", err)
	}
	n := 0
	for _, a := range admins {
		if a.Role == adminauth.RoleSecurityAdmin && !a.Disabled {
			n++
		}
	}
	if n >= bootstrapAdmins {
		return nil, "", fmt.Errorf("admin bootstrap: %d security admins exist already: propose new admins in the console (a second admin approves)", n)
	}
	var raw [15]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	password := base32.StdEncoding.EncodeToString(raw[:])
	ad, err := m.auth.CreateAdmin(ctx, name, password, adminauth.RoleSecurityAdmin)
	if err != nil {
		return nil, "", fmt.Errorf("admin bootstrap: %w", err)
	}
	if _, err := m.audit.Append(ctx, audit.Entry{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "hpfleet-admin-bootstrap"},
		Action: audit.ActionAdminCreate, Target: "admin " + ad.Name, Outcome: audit.OutcomeSuccess,
		Details: map[string]string{"admin_id": ad.ID, "role": string(ad.Role), "via": "bootstrap"}}); err != nil {
		// An admin nobody can see created: take it back.
		if derr := m.auth.SetDisabled(ctx, ad.ID, true); derr != nil {
			return nil, "", fmt.Errorf("admin bootstrap: audit: %w (and disabling %s: %v)", err, ad.Name, derr)
		}
		return nil, "", fmt.Errorf("admin bootstrap: audit: %w (admin %s disabled)", err, ad.Name)
	}
	return &ad, password, nil
}
