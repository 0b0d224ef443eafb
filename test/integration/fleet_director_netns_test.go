package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/test"
)

// directorFleet is a fleet environment whose hpfleet runs the director
// (its root repository made here, online keys in files), follows an image
// repository on nginx, and writes the registrar's subscriber rows into
// Kamailio's PostgreSQL and asks Kamailio to send check-sync.
type directorFleet struct {
	*fleetEnv
	imageRoot, directorRoot, imageURL string
}

func newDirectorFleet(t *testing.T) *directorFleet {
	t.Helper()
	return newDirectorFleetWith(t, directorOptions{})
}

// directorOptions change the director fleet: the director's metadata
// lifetimes (zero: tufrepo's defaults) and more Kamailio options.
type directorOptions struct {
	lifetimes tufrepo.Lifetimes
	kamailio  []test.KamailioOption
}

func newDirectorFleetWith(t *testing.T, o directorOptions) *directorFleet {
	t.Helper()
	pg := test.StartPostgres(t, test.PostgresTCP())
	regDSN := pg.NewDatabase(t)
	test.KamailioAuthSchema(t, regDSN)
	d := &directorFleet{}
	d.fleetEnv = newFleetEnvWith(t, fleetSetup{
		kamailio: append([]test.KamailioOption{test.KamailioPostgresAuth(pg.URL(t, regDSN)), test.KamailioRPC(),
			test.KamailioDigestAlgorithm("SHA-256")}, o.kamailio...),
		hpfleet: func(t testing.TB, dir string, k *test.Kamailio) []string {
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
			repo := func(at, prefix string, life tufrepo.Lifetimes) {
				snap, ts := key(prefix+"-snapshot"), key(prefix+"-timestamp")
				r, err := tufrepo.Init(at, tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: key(prefix + "-root"), Threshold: 1},
					Targets: tufrepo.RoleKeys{Keys: key(prefix + "-targets"), Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: snap, Threshold: 1},
					Timestamp: tufrepo.RoleKeys{Keys: ts, Threshold: 1}, Lifetimes: life})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Publish(tufrepo.SigningKeys{Snapshot: snap, Timestamp: ts}); err != nil {
					t.Fatal(err)
				}
			}
			// The vendor's image repository, on any web server.
			ngx := test.StartStaticNginx(t)
			repo(filepath.Join(ngx.Root, "image"), "image", tufrepo.Lifetimes{})
			d.imageRoot, d.imageURL = filepath.Join(ngx.Root, "image", "public", "1.root.json"), ngx.URL+"/image/public/"
			// The director's root: its root key stays offline.
			dirRepo := filepath.Join(dir, "director-root")
			repo(dirRepo, "director", o.lifetimes)
			d.directorRoot = filepath.Join(dirRepo, "public", "1.root.json")
			dsn := filepath.Join(dir, "registrar-dsn")
			if err := os.WriteFile(dsn, []byte(regDSN), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--director", dirRepo, "--director-targets-key", filepath.Join(keyDir, "director-targets.pem"),
				"--director-snapshot-key", filepath.Join(keyDir, "director-snapshot.pem"),
				"--director-timestamp-key", filepath.Join(keyDir, "director-timestamp.pem"),
				"--image-url", d.imageURL, "--image-root", d.imageRoot,
				"--registrar-db", "@" + dsn, "--registrar-domain", k.IP(), "--registrar-rpc", k.RPCURL(),
				"--password-rotation", "0", "--director-interval", "1s"}
		},
	})
	return d
}

// phone writes the config of a factory-fresh fleet phone that follows the
// director: its TPM holds only its EK certificate, and no SIP password is
// anywhere (the fleet seals it to the TPM); then puts it on the
// allow-list.
func (d *directorFleet) phone(t *testing.T, user, serial string) string {
	t.Helper()
	sw := test.StartSWTPM(t, test.SWTPMWithEK(d.mfg))
	path := d.writeConfig(t, phoneConf{user: user, certCN: "-", credStore: sw.Spec, mediaSecurity: "default"})
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
	prov := fmt.Sprintf("\n[provision]\nserver = %q\nserver_name = %q\nserver_ca = %q\ndevice_ca = %q\nmodel = \"hp-desk-1\"\n"+
		"checkin_interval = \"10s\"\nimage_root = %q\ndirector_root = %q\nimage_repo = %q\nconfig_trial = \"20s\"\n",
		d.srv.URL, fleetServerName, filepath.Join(d.pki, ca.ServerCACertFile), filepath.Join(d.pki, ca.DeviceCACertFile),
		pin(d.imageRoot, "image-root.json"), pin(d.directorRoot, "director-root.json"), d.imageURL)
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
	if res, err := d.admin.Import(context.Background(), []api.AllowEntry{{Serial: serial, EKSHA256: ek, Model: "hp-desk-1", Group: "floor-1"}}); err != nil || res.Added != 1 {
		t.Fatalf("allow-list import: %+v, %v", res, err)
	}
	return path
}

// TestFleetDirectorEndToEnd is issue 12's whole path through hpfleet: a
// factory-fresh phone enrols (proving a TPM sealing key too), the admin
// sets its configuration document, hpfleet generates the SIP password,
// seals it to that TPM, writes the registrar's subscriber row (SHA-256
// digest) and publishes the document through the director; the phone
// verifies the metadata, opens the password into its credential store and
// registers. A rotation reaches the registered phone by check-sync and the
// old password is dropped once its check-in confirms the new document.
func TestFleetDirectorEndToEnd(t *testing.T) {
	d := newDirectorFleet(t)
	path := d.phone(t, "alice", "HP1-000010")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	startAgentProcess(t, "--config", path)
	id := waitEnrolled(t, cfg.ControlSocket)
	d.k.SetDeviceUser(t, id, "alice")
	ctx := context.Background()
	dev, err := d.admin.Device(ctx, id)
	if err != nil || !dev.Device.SealingKey {
		t.Fatalf("device %s: %+v, %v; want a sealing key proven at enrolment", id, dev, err)
	}

	doc := fmt.Sprintf("[[account]]\nname = \"alice\"\nuser = \"alice\"\nregistrar = %q\ndomain = %q\npassword_cred = \"sip/alice\"\n",
		d.registrar(), d.k.IP())
	start := time.Now()
	if _, err := d.admin.SetConfig(ctx, api.ScopeDevice, id, []byte(doc)); err != nil {
		t.Fatalf("config set: %v", err)
	}
	d.k.WaitRegistered(t, "alice", 60*time.Second)
	t.Logf("config set to registered with the sealed password: %v (the phone was not registered: no check-sync, its next poll)",
		time.Since(start).Round(time.Millisecond))
	c := control.NewClient(cfg.ControlSocket)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Provisioning == nil || st.Provisioning.ConfigVersion == 0 {
		t.Fatalf("status provisioning = %+v, want the document running", st.Provisioning)
	}
	v1 := st.Provisioning.ConfigVersion

	// Rotation: the registered phone hears of it by check-sync.
	start = time.Now()
	if _, err := d.admin.Rotate(ctx, id); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	waitFor(t, 30*time.Second, func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.Provisioning != nil && st.Provisioning.ConfigVersion > v1 && st.Provisioning.GoodVersion > v1
	})
	t.Logf("rotation to the phone running the new password: %v", time.Since(start).Round(time.Millisecond))
	d.k.WaitRegistered(t, "alice", 30*time.Second)
	// The fleet drops the old password once a check-in reports the new
	// document (the next poll, 10 s here).
	var ps *api.ProvisionStatus
	waitFor(t, 40*time.Second, func() bool {
		ps, err = d.admin.Provision(ctx, id)
		return err == nil && len(ps.Accounts) == 1 && ps.Accounts[0].Generation == 2 && !ps.Accounts[0].PreviousValid
	})
	if ps.ReportedConfigVersion < ps.Accounts[0].SealedVersion {
		t.Errorf("provision status %+v: the old password dropped before the phone confirmed the new one", ps)
	}
}
