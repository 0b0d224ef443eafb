package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/console"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/approval/boltapproval"
	"github.com/hardphone/hardphone/fleet/console/approval/pgapproval"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
)

// consoleOffMessage is what /console/ answers when the console cannot
// run: without the audit log no admin action could be recorded, and the
// console refuses to run unrecorded.
const consoleOffMessage = "the admin console is off: it needs the audit log. Create its key with " +
	"`hpctl fleet audit keygen` (CA-DIR/audit.key, or pass --audit-key) and restart hpfleet.\n"

// consoleFlags configure the admin console served beside the fleet API.
type consoleFlags struct {
	origins multiFlag
	rpID    string
}

func (c *consoleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.rpID, "console-rp-id", "", "WebAuthn relying party ID of the console's passkeys: a DNS name its origins are on (default: the server certificate's first DNS name; none: no passkeys, TOTP only). Passkeys are bound to it: changing it strands them")
	fs.Var(&c.origins, "console-origin", "origin of the admin console (https://HOST[:PORT], lowercase) whose state-changing requests it accepts (repeatable; default https://NAME:PORT for each DNS name and IP address of the server certificate, PORT from --listen)")
}

// consoleOff answers every console path with 503 and how to turn the
// console on; the JSON API gets the console's error shape.
func consoleOff() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"error\":{\"code\":\"unavailable\",\"message\":%q}}\n", strings.TrimSpace(consoleOffMessage))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, consoleOffMessage)
	})
}

// consoleOrigins are the --console-origin values, or the default: the
// server certificate's names at the listening port.
func consoleOrigins(f serveFlags, cert *tls.Certificate) ([]string, error) {
	if len(f.console.origins) > 0 {
		return append([]string(nil), f.console.origins...), nil
	}
	_, port, err := net.SplitHostPort(f.listen)
	if err != nil {
		return nil, usagef("serve: --listen %q: %v", f.listen, err)
	}
	if port == "0" || port == "" {
		return nil, usagef("serve: --listen %q has no fixed port: give --console-origin", f.listen)
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, usagef("serve: no server certificate to take the console's origin from: give --console-origin")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	var hosts []string
	for _, n := range leaf.DNSNames {
		if !strings.Contains(n, "*") {
			hosts = append(hosts, strings.ToLower(n))
		}
	}
	for _, ip := range leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	if len(hosts) == 0 {
		return nil, usagef("serve: the server certificate names no host: give --console-origin")
	}
	var out []string
	for _, h := range hosts {
		if port == "443" {
			// RFC 6454 §6.1: the default port is left out of the
			// serialised origin.
			out = append(out, "https://"+hostForURL(h))
			continue
		}
		out = append(out, "https://"+net.JoinHostPort(h, port))
	}
	return out, nil
}

// consoleWebAuthn is the Authenticator's option for passkeys: the relying
// party is --console-rp-id or the server certificate's first DNS name,
// its origins those of the console on that name (WebAuthn refuses IP
// addresses: an origin on one is served, without passkeys). None: the
// certificate names no DNS name and no RP ID was given.
func consoleWebAuthn(f serveFlags, cert *tls.Certificate, log *slog.Logger) ([]adminauth.Option, error) {
	rpID := strings.ToLower(f.console.rpID)
	if rpID == "" && cert != nil && len(cert.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			for _, n := range leaf.DNSNames {
				if !strings.Contains(n, "*") {
					rpID = strings.ToLower(n)
					break
				}
			}
		}
	}
	if rpID == "" {
		log.Warn("admin console without passkeys: the server certificate names no DNS name (give --console-rp-id)")
		return nil, nil
	}
	all, err := consoleOrigins(f, cert)
	if err != nil {
		if f.console.rpID == "" {
			// The console refuses to start on it too, when it runs.
			log.Warn("admin console without passkeys: no origin", "err", err)
			return nil, nil
		}
		return nil, err
	}
	var origins []string
	for _, o := range all {
		u, err := url.Parse(o)
		if err != nil {
			continue
		}
		if h := u.Hostname(); h == rpID || strings.HasSuffix(h, "."+rpID) {
			origins = append(origins, o)
		}
	}
	if len(origins) == 0 {
		return nil, usagef("serve: --console-rp-id %q: no console origin (%v) is on that name", rpID, all)
	}
	wa, err := adminauth.NewWebAuthn(rpID, "hpfleet "+rpID, origins)
	if err != nil {
		return nil, usagef("serve: --console-rp-id %q: %v", rpID, err)
	}
	log.Info("admin console passkeys", "rp_id", rpID, "origins", origins)
	return []adminauth.Option{adminauth.WithWebAuthn(wa)}, nil
}

func hostForURL(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// buildConsole makes the admin console over the management plane, or,
// without an audit log, the handler that says how to turn it on. Its
// approval store sits beside adminauth's (bbolt: DATA/approvals;
// PostgreSQL: the same pool).
func (m *mgmt) buildConsole(f serveFlags, st store.Store, adminCAs []*x509.Certificate, cert *tls.Certificate, log *slog.Logger) (http.Handler, error) {
	if m.audit == nil {
		log.Warn("admin console off: it needs the audit log (hpctl fleet audit keygen, or --audit-key); /console/ answers 503")
		return consoleOff(), nil
	}
	origins, err := consoleOrigins(f, cert)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var approvals approval.Store
	switch s := st.(type) {
	case *pgstore.Store:
		as, err := pgapproval.New(ctx, s.Pool())
		if err != nil {
			return nil, err
		}
		approvals = as
	default:
		as, err := boltapproval.Open(filepath.Join(f.data, "approvals"))
		if err != nil {
			return nil, err
		}
		m.closers = append(m.closers, func() { as.Close() })
		approvals = as
	}
	cfg := console.Config{Auth: m.auth, Admins: m.admins, Audit: m.audit, Inventory: st,
		Approvals: approvals, Origins: origins, AdminCAs: adminCAs,
		// The events page shows the journals phones exported (proved on
		// ingestion), and the check-in reports of phones that export none.
		Events: &console.JournalEvents{Journal: st, Reports: st},
		// The anomaly detector's findings, with the responses it took.
		Findings: st}
	if m.rollout != nil {
		cfg.Rollouts = consoleRollouts{m.rollout}
	}
	c, err := console.New(cfg, console.WithLogger(log))
	if err != nil {
		return nil, err
	}
	log.Info("admin console configured", "origins", origins, "admin_cas", len(adminCAs), "rollouts", m.rollout != nil)
	return c.Handler(), nil
}

// consoleRollouts adapts the rollout engine to the console.
type consoleRollouts struct{ e *rollout.Engine }

func (r consoleRollouts) List(ctx context.Context, after string, limit int) ([]api.Rollout, string, error) {
	v, next, err := r.e.List(ctx, after, limit)
	return v, next, rolloutErr(err)
}

func (r consoleRollouts) Get(ctx context.Context, id string) (api.Rollout, error) {
	v, err := r.e.Get(ctx, store.RolloutID(id))
	return v, rolloutErr(err)
}

func (r consoleRollouts) Control(ctx context.Context, id string, action console.RolloutAction, by string, source netip.Addr, reason string) (api.Rollout, error) {
	do := map[console.RolloutAction]func(context.Context, store.RolloutID, rollout.Actor, string) (rollout.View, error){
		console.RolloutHalt: r.e.Halt, console.RolloutResume: r.e.Resume, console.RolloutAbort: r.e.Abort}[action]
	if do == nil {
		return api.Rollout{}, fmt.Errorf("rollout action %q: %w", action, console.ErrRolloutState)
	}
	v, err := do(ctx, store.RolloutID(id), rollout.Actor{Name: by, Source: source}, reason)
	return v, rolloutErr(err)
}

// Create calls the engine as fleet/server's POST /v1/admin/rollouts does:
// the request made into the engine's Spec (rollout.SpecFromRequest, as
// fleet/server does), checked, then the permission
// fleet/server's rule names (policy.write for a document that changes the
// security policy, rollout.start otherwise) authorized before the engine
// plans and stores the rollout.
func (r consoleRollouts) Create(ctx context.Context, req api.RolloutRequest, by string, source netip.Addr, authorize console.RolloutAuthorize) (api.Rollout, error) {
	spec, err := rollout.SpecFromRequest(req)
	if err != nil {
		return api.Rollout{}, fmt.Errorf("%w: %w", console.ErrRolloutInvalid, err)
	}
	keys, err := r.e.PolicyChange(ctx, spec)
	if err != nil {
		return api.Rollout{}, rolloutErr(err)
	}
	need := adminauth.PermRolloutStart
	if len(keys) > 0 {
		need = adminauth.PermPolicyWrite
	}
	if err := authorize(need); err != nil {
		return api.Rollout{}, err
	}
	v, err := r.e.Create(ctx, spec, rollout.Actor{Name: by, Source: source})
	return v, rolloutErr(err)
}

// approvalPermission is fleet/server's rule: approving (or refusing) a
// rollout that changes the security policy is a security admin's, any
// other an operator's.
func (r consoleRollouts) approvalPermission(ctx context.Context, id string, authorize console.RolloutAuthorize) error {
	v, err := r.e.Get(ctx, store.RolloutID(id))
	if err != nil {
		return rolloutErr(err)
	}
	need := adminauth.PermApproveRollout
	if len(v.PolicyChange) > 0 {
		need = adminauth.PermApproveSecurity
	}
	return authorize(need)
}

func (r consoleRollouts) Approve(ctx context.Context, id string, by string, source netip.Addr, authorize console.RolloutAuthorize) (api.Rollout, error) {
	if err := r.approvalPermission(ctx, id, authorize); err != nil {
		return api.Rollout{}, err
	}
	v, err := r.e.Approve(ctx, store.RolloutID(id), rollout.Actor{Name: by, Source: source})
	return v, rolloutErr(err)
}

func (r consoleRollouts) Refuse(ctx context.Context, id string, by string, source netip.Addr, reason string, authorize console.RolloutAuthorize) (api.Rollout, error) {
	if err := r.approvalPermission(ctx, id, authorize); err != nil {
		return api.Rollout{}, err
	}
	v, err := r.e.Refuse(ctx, store.RolloutID(id), rollout.Actor{Name: by, Source: source}, reason)
	return v, rolloutErr(err)
}

// rolloutErr maps the engine's sentinels to the console's.
func rolloutErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rollout.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", console.ErrRolloutNotFound, err)
	case errors.Is(err, rollout.ErrSamePerson):
		return fmt.Errorf("%w: %w", console.ErrRolloutSamePerson, err)
	case errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrNeedsApproval):
		return fmt.Errorf("%w: %w", console.ErrRolloutState, err)
	case errors.Is(err, rollout.ErrInvalid):
		return fmt.Errorf("%w: %w", console.ErrRolloutInvalid, err)
	}
	return err
}
