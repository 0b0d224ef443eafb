package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/client/clienttest"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// rolloutSessionUA is the User-Agent the admins' sessions are bound to
// (hpctl's): hpfleet binds a session to the client's network and agent.
const rolloutSessionUA = "hpctl-console/1"

// rolloutFleet is hpfleet with its director (image repository on nginx,
// director root here, online keys in files) and an audit key, so staged
// rollouts are on and every admin call needs a session; admins with TOTP
// and sessions were made in its adminauth store before it started.
type rolloutFleet struct {
	*fleetEnv
	imageRoot, directorRoot, imageURL string
	// admins are session clients by admin name.
	admins map[string]*client.Client
}

// rolloutAdmins are the admins of the test and their roles: "admin" is
// the name of the CA's admin certificate (fleetEnv's client).
var rolloutAdmins = map[string]adminauth.Role{"admin": adminauth.RoleSecurityAdmin, "sam": adminauth.RoleSecurityAdmin,
	"olivia": adminauth.RoleOperator, "oscar": adminauth.RoleOperator}

func newRolloutFleet(t *testing.T) *rolloutFleet {
	t.Helper()
	rf := &rolloutFleet{}
	tokens := map[string]string{}
	rf.fleetEnv = newFleetEnvWith(t, fleetSetup{
		hpfleet: func(t testing.TB, dir string, k *test.Kamailio) []string {
			auditKey := filepath.Join(dir, "audit.key")
			if _, err := audit.WriteKeyFiles(auditKey, auditKey+".pub", fleetServerName+"/audit"); err != nil {
				t.Fatal(err)
			}
			// The admins, in the store hpfleet opens (it is not running).
			for name, tok := range clienttest.Sessions(t, filepath.Join(dir, "fleet-data"), rolloutAdmins, rolloutSessionUA) {
				tokens[name] = tok
			}

			keyDir := filepath.Join(dir, "keys")
			if err := os.Mkdir(keyDir, 0o700); err != nil {
				t.Fatal(err)
			}
			key := func(name string) []*tufrepo.Key {
				k, err := tufrepo.GenerateKey(filepath.Join(keyDir, name+".pem"), tufrepo.AlgECDSAP256)
				if err != nil {
					t.Fatal(err)
				}
				return []*tufrepo.Key{k}
			}
			repo := func(at, prefix string) {
				snap, ts := key(prefix+"-snapshot"), key(prefix+"-timestamp")
				r, err := tufrepo.Init(at, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: key(prefix + "-root"), Threshold: 1},
					Targets: tufrepo.RoleKeys{Keys: key(prefix + "-targets"), Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: snap, Threshold: 1},
					Timestamp: tufrepo.RoleKeys{Keys: ts, Threshold: 1}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Publish(tufrepo.SigningKeys{Snapshot: snap, Timestamp: ts}); err != nil {
					t.Fatal(err)
				}
			}
			ngx := test.StartStaticNginx(t)
			repo(filepath.Join(ngx.Root, "image"), "image")
			rf.imageRoot, rf.imageURL = filepath.Join(ngx.Root, "image", "public", "1.root.json"), ngx.URL+"/image/public/"
			dirRepo := filepath.Join(dir, "director-root")
			repo(dirRepo, "director")
			rf.directorRoot = filepath.Join(dirRepo, "public", "1.root.json")
			return []string{"--director", dirRepo, "--director-targets-key", filepath.Join(keyDir, "director-targets.pem"),
				"--director-snapshot-key", filepath.Join(keyDir, "director-snapshot.pem"),
				"--director-timestamp-key", filepath.Join(keyDir, "director-timestamp.pem"),
				"--image-url", rf.imageURL, "--image-root", rf.imageRoot, "--director-interval", "1s",
				"--audit-key", auditKey, "--rollout-interval", "1s", "--audit-checkpoint-interval", "1s"}
		},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hpfleet log ---\n%s", rf.srv.LogTail())
		}
	})
	// The CA's admin certificate names "admin" (fleetEnv's client).
	rf.admins = clienttest.Clients(t, rf.srv.URL, fleetServerName, rf.pki, rf.admin, tokens, rolloutSessionUA)
	// The allow-list import below (fleetEnv.admin) is the security
	// admin's, with its session: every admin endpoint wants one here.
	rf.admin = rf.admins["admin"]
	return rf
}

// rolloutPhone is a real agent (`hardphone run`) of group floor-1.
type rolloutPhone struct {
	serial, id string
	ctl        *control.Client
}

// phone writes the config of a fleet phone that follows the director,
// whose one account is named "line1" (one group document speaks to every
// phone's account: a shared line, each phone its own contact of the
// user's address of record), puts it on the allow-list,
// seeds its SIP password into its TPM-backed credential store, runs it,
// waits for its enrolment and binds its device certificate to its user
// at the registrar.
func (rf *rolloutFleet) phone(t *testing.T, user, serial string) *rolloutPhone {
	t.Helper()
	sw := test.StartSWTPM(t, test.SWTPMWithEK(rf.mfg))
	path := rf.writeConfig(t, phoneConf{user: user, certCN: "-", credStore: sw.Spec, mediaSecurity: "default", extra: "name = \"line1\"\n"})
	dir := filepath.Dir(path)
	pin := func(from, name string) string {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The shortest check-in and configuration trial the phone accepts.
	prov := fmt.Sprintf("\n[provision]\nserver = %q\nserver_name = %q\nserver_ca = %q\ndevice_ca = %q\nmodel = \"hp-desk-1\"\n"+
		"checkin_interval = \"10s\"\nimage_root = %q\ndirector_root = %q\nimage_repo = %q\nconfig_trial = \"10s\"\n",
		rf.srv.URL, fleetServerName, filepath.Join(rf.pki, ca.ServerCACertFile), filepath.Join(rf.pki, ca.DeviceCACertFile),
		pin(rf.imageRoot, "image-root.json"), pin(rf.directorRoot, "director-root.json"), rf.imageURL)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(prov); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ek := fmt.Sprintf("%x", sha256.Sum256(sw.EKCertECCP256))
	if res, err := rf.admin.Import(context.Background(), []api.AllowEntry{{Serial: serial, EKSHA256: ek, Model: "hp-desk-1", Group: "floor-1"}}); err != nil || res.Added != 1 {
		t.Fatalf("allow-list import: %+v, %v", res, err)
	}
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: filepath.Join(dir, "state"), Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Put("sip/"+user, []byte(users[user])); err != nil {
		t.Fatal(err)
	}
	if err := creds.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	startAgentProcess(t, "--config", path)
	id := waitEnrolled(t, cfg.ControlSocket)
	rf.k.SetDeviceUser(t, id, user)
	return &rolloutPhone{serial: serial, id: id, ctl: control.NewClient(cfg.ControlSocket)}
}

// waitStatus waits until the phone's status satisfies cond.
func (p *rolloutPhone) waitStatus(t *testing.T, timeout time.Duration, what string, cond func(*control.Status) bool) *control.Status {
	t.Helper()
	var last *control.Status
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := p.ctl.Status(context.Background())
		if err == nil && st.Provisioning != nil {
			last = st
			if cond(st) {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("%s (%s): not within %v; last provisioning %+v", p.serial, what, timeout, *last.Provisioning)
	}
	t.Fatalf("%s (%s): no status within %v", p.serial, what, timeout)
	return nil
}

// waitRollout polls a rollout until done says so.
func waitRollout(t *testing.T, c *client.Client, id string, timeout time.Duration, what string, done func(*api.Rollout) bool) *api.Rollout {
	t.Helper()
	var last *api.Rollout
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		v, err := c.Rollout(context.Background(), id)
		if err != nil {
			t.Fatalf("rollout %s: %v", id, err)
		}
		last = v
		if done(v) {
			return v
		}
		time.Sleep(200 * time.Millisecond) // hpfleet's loop runs every second
	}
	t.Fatalf("rollout %s not %s within %v: %+v", id, what, timeout, last)
	return nil
}

// TestRolloutRealAgents is issue 13's "a config that breaks registration
// halts the rollout before ring 2" over real agents: three `hardphone run`
// phones (each with its own swtpm, enrolled by the fleet) of one group
// share one line at Kamailio, each its own contact;
// hpfleet runs the director and an audit key, so every admin call carries
// a session. A security admin's first document (it names the registrar: a
// security policy change) goes out once a second security admin approves.
// Then one operator starts, and another approves, a configuration rollout
// whose document breaks registration (the account's digest user is one
// the registrar refuses), ring 1 the canary, ring 2 the rest. The canary's
// agent applies it, fails to register within its trial, goes back to the
// first document by itself and reports; the rollout halts on the canary
// with "configuration reverted", ring 2 never starts, and the other two
// phones keep the first document and stay registered.
func TestRolloutRealAgents(t *testing.T) {
	rf := newRolloutFleet(t)
	ctx := context.Background()
	var phones []*rolloutPhone
	for i := 0; i < 3; i++ {
		phones = append(phones, rf.phone(t, "alice", fmt.Sprintf("HP1-0000%d", 30+i)))
	}
	for _, p := range phones {
		p.waitStatus(t, 60*time.Second, "registered on its image config", registered)
	}

	// The first document, a security policy change: started by one
	// security admin, approved by another.
	doc1 := fmt.Sprintf("[[account]]\nname = \"line1\"\nuser = \"alice\"\nregistrar = %q\npassword_cred = \"sip/alice\"\nexpires = \"120s\"\n",
		rf.registrar())
	ring := func(name string, pct int, devs ...string) api.RolloutRing {
		return api.RolloutRing{Name: name, Percent: pct, Devices: devs}
	}
	r1, err := rf.admins["admin"].CreateRollout(ctx, api.RolloutRequest{Kind: "config", Group: "floor-1", Config: doc1,
		Rings: []api.RolloutRing{ring("all", 100)}, Deadline: "5m", ReportTimeout: "2m"})
	if err != nil {
		t.Fatalf("CreateRollout(first document) as a security admin: %v", err)
	}
	if len(r1.PolicyChange) == 0 {
		t.Fatalf("first document rollout %+v: want it named a security policy change", r1)
	}
	if _, err := rf.admins["olivia"].ApproveRollout(ctx, r1.ID); err == nil {
		t.Fatalf("an operator approved a security policy change")
	}
	start := time.Now()
	if _, err := rf.admins["sam"].ApproveRollout(ctx, r1.ID); err != nil {
		t.Fatalf("ApproveRollout(first document) by a second security admin: %v", err)
	}
	waitRollout(t, rf.admins["olivia"], r1.ID, 90*time.Second, "completed", func(v *api.Rollout) bool {
		if v.State == "halted" {
			t.Fatalf("first document rollout halted: %+v", v.Halt)
		}
		return v.State == "completed"
	})
	t.Logf("first document (security policy change, 1 ring, 3 real agents): %v from approval to completed",
		time.Since(start).Round(time.Millisecond))
	v1 := make([]uint64, len(phones))
	targets1 := make([]int64, len(phones))
	for i, p := range phones {
		st := p.waitStatus(t, 30*time.Second, "first document good and registered", func(st *control.Status) bool {
			ps := st.Provisioning
			return ps.ConfigVersion > 0 && ps.GoodVersion == ps.ConfigVersion && !ps.Trial && registered(st)
		})
		if g := grantedExpires(st); g != 120 {
			t.Fatalf("%s: granted expires under the first document = %d, want 120", p.serial, g)
		}
		v1[i], targets1[i] = st.Provisioning.ConfigVersion, st.Provisioning.DirectorTargets
	}

	// The breaking document: same registrar (no policy change, an
	// operator's), but a digest user the registrar does not know.
	doc2 := doc1 + "auth_user = \"nobody\"\n"
	canary := phones[0]
	r2, err := rf.admins["olivia"].CreateRollout(ctx, api.RolloutRequest{Kind: "config", Group: "floor-1", Config: doc2,
		Rings: []api.RolloutRing{ring("canary", 0, canary.id), ring("rest", 100)}, Deadline: "5m", ReportTimeout: "2m"})
	if err != nil {
		t.Fatalf("CreateRollout(breaking document) as an operator: %v", err)
	}
	if len(r2.PolicyChange) != 0 || r2.State != "pending" {
		t.Fatalf("breaking document rollout = %s, policy change %v; want pending and no policy change", r2.State, r2.PolicyChange)
	}
	if _, err := rf.admins["olivia"].ApproveRollout(ctx, r2.ID); err == nil {
		t.Fatalf("the rollout's creator approved it")
	}
	start = time.Now()
	if _, err := rf.admins["oscar"].ApproveRollout(ctx, r2.ID); err != nil {
		t.Fatalf("ApproveRollout(breaking document) by a second operator: %v", err)
	}
	canary.waitStatus(t, 30*time.Second, "breaking document on trial", func(st *control.Status) bool {
		return st.Provisioning.ConfigVersion > v1[0] && st.Provisioning.Trial
	})
	trialAt := time.Since(start)
	st := canary.waitStatus(t, 60*time.Second, "breaking document reverted", func(st *control.Status) bool {
		ps := st.Provisioning
		return ps.ConfigVersion == v1[0] && !ps.Trial && ps.Reverted != nil && ps.Reverted.Version > v1[0]
	})
	revertedAt := time.Since(start)
	if r := st.Provisioning.Reverted.Reason; !strings.Contains(r, "line1 did not register within 10s") {
		t.Fatalf("canary revert reason %q, want the account that did not register", r)
	}
	halted := waitRollout(t, rf.admins["oscar"], r2.ID, 90*time.Second, "halted", func(v *api.Rollout) bool {
		if v.State == "completed" {
			t.Fatalf("breaking rollout completed: %+v", v)
		}
		return v.State == "halted"
	})
	haltAt := time.Since(start)
	t.Logf("breaking document over real agents: approval to canary on trial %v, to canary reverted by itself %v, to rollout halted %v "+
		"(check-in 10s, config trial 10s, rollout and director loops 1s)",
		trialAt.Round(time.Millisecond), revertedAt.Round(time.Millisecond), haltAt.Round(time.Millisecond))
	h := halted.Halt
	if h == nil || h.By != "system" || h.Ring != "canary" || len(h.Failures) != 1 || h.Failures[0].Device != canary.id ||
		!strings.Contains(h.Failures[0].Reason, "configuration reverted") {
		t.Fatalf("halt = %+v, want the system halting ring canary on %s with \"configuration reverted\"", h, canary.id)
	}
	if len(halted.Rings) != 2 || !halted.Rings[1].StartedAt.IsZero() || halted.Rings[1].Done+halted.Rings[1].Updating+halted.Rings[1].Failed != 0 {
		t.Fatalf("rings = %+v, want ring 2 never started", halted.Rings)
	}
	t.Logf("halt: ring %s, %s: %s", h.Ring, h.Failures[0].Device, h.Failures[0].Reason)

	// Each agent refreshed from the director after the halt and runs the
	// first document, registered (its own REGISTER's 200): the canary
	// again, the other two still, their director targets unchanged.
	haltTime := time.Now()
	for i, p := range phones {
		st := p.waitStatus(t, 30*time.Second, "a refresh after the halt", func(st *control.Status) bool {
			return st.Provisioning.LastRefresh.After(haltTime) && registered(st)
		})
		ps := st.Provisioning
		if ps.ConfigVersion != v1[i] || ps.GoodVersion != v1[i] || ps.Trial || grantedExpires(st) != 120 {
			t.Fatalf("%s after the halt: %+v, want the first document v%d running and good", p.serial, *ps, v1[i])
		}
		if i > 0 && (ps.Reverted != nil || ps.DirectorTargets != targets1[i]) {
			t.Fatalf("%s after the halt: %+v, want no revert and director targets still v%d (ring 2 never published)", p.serial, *ps, targets1[i])
		}
	}
}
