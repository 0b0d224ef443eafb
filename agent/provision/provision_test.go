package provision

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/server"
	"github.com/hardphone/hardphone/test"
)

// TestZeroTouch: several phones, each with its own swtpm and EK
// certificates from a test manufacturer, enrol with no manual step, get
// certificates, check in and renew; the inventory lists them. On both
// stores.
func TestZeroTouch(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
			f := startFleet(t, b.open(t), initPKI(t), mfg)
			const n = 3
			phones := make([]*phone, n)
			for i := range phones {
				phones[i] = newPhone(t, mfg)
				f.allow(t, phones[i].allowEntry(i))
			}
			var wg sync.WaitGroup
			sts := make([]*Status, n)
			errs := make([]error, n)
			for i, p := range phones {
				var opts []Option
				c := f.provisioner(t, p, opts...)
				if i == 0 {
					// The first phone found the server by a DHCP hint: the
					// URL names the pinned server, the hint where to dial.
					var err error
					c, err = New(Config{Credentials: p.creds, ServerURL: "https://fleet.test:1", ServerName: "fleet.test",
						ServerRoots: f.serverRoots, DeviceCA: f.deviceCA, AddressHint: f.addr})
					if err != nil {
						t.Fatalf("New error %v", err)
					}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					sts[i], errs[i] = c.EnrolOnce(ctx)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("phone %d: EnrolOnce error %v", i, err)
				}
			}
			for i, p := range phones {
				c := f.provisioner(t, p)
				st, err := c.Status()
				if err != nil || st.DeviceID != sts[i].DeviceID || st.Serial != p.allowEntry(i).Serial {
					t.Fatalf("phone %d: Status = %+v, %v, want %+v", i, st, err, sts[i])
				}
				// The credential store's TLS identity is the fleet's
				// certificate on the TPM key.
				id, err := p.creds.Identity()
				if err != nil {
					t.Fatalf("phone %d: Identity error %v", i, err)
				}
				if _, err := id.Leaf.Verify(x509.VerifyOptions{Roots: pool(f.deviceCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Fatalf("phone %d: certificate does not verify under the device CA: %v", i, err)
				}
				// Enrol again: it holds a live certificate, nothing is sent.
				if st2, err := c.Enrol(ctx); err != nil || st2.DeviceID != st.DeviceID {
					t.Fatalf("phone %d: Enrol when enrolled = %+v, %v", i, st2, err)
				}
				resp, err := c.CheckIn(ctx, report())
				if err != nil || resp.Action != api.ActionNone {
					t.Fatalf("phone %d: CheckIn = %+v, %v", i, resp, err)
				}
				old := id.Leaf.SerialNumber
				st3, err := c.Renew(ctx)
				if err != nil {
					t.Fatalf("phone %d: Renew error %v", i, err)
				}
				id, err = p.creds.Identity()
				if err != nil || id.Leaf.SerialNumber.Cmp(old) == 0 || st3.DeviceID != st.DeviceID {
					t.Fatalf("phone %d: after Renew the certificate serial is still %x (%v)", i, old, err)
				}
				// Check in with the renewed certificate.
				if _, err := c.CheckIn(ctx, report()); err != nil {
					t.Fatalf("phone %d: CheckIn after renewal error %v", i, err)
				}
			}
			inv, err := f.admin.Inventory(ctx, "", 0)
			if err != nil || len(inv.Devices) != n {
				t.Fatalf("Inventory = %d devices, %v, want %d", len(inv.Devices), err, n)
			}
			for _, d := range inv.Devices {
				det, err := f.admin.Device(ctx, d.ID)
				if err != nil || len(det.Reports) != 2 || len(det.Certs) != 2 || d.Firmware != "1.0.0" {
					t.Fatalf("Device %s = %d reports, %d certs, firmware %q, %v; want 2, 2, 1.0.0", d.ID, len(det.Reports), len(det.Certs), d.Firmware, err)
				}
			}
		})
	}
}

func pool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// TestEnrolRefusals: every refusal of attested enrolment, each answered
// with its code, counted, and leaving no device.
func TestEnrolRefusals(t *testing.T) {
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	f := startFleet(t, backends(t)[0].open(t), initPKI(t), mfg)
	// unknown EK CA: a TPM from a manufacturer the fleet does not trust,
	// even with its EK hash on the list.
	rogueMfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "rogue"))
	rogue := newPhone(t, rogueMfg)
	f.allow(t, rogue.allowEntry(0))
	_, err := f.provisioner(t, rogue).EnrolOnce(ctx)
	wantCode(t, "EnrolOnce(untrusted manufacturer)", err, api.CodeUntrustedEK)

	// device not on the list.
	stranger := newPhone(t, mfg)
	_, err = f.provisioner(t, stranger).EnrolOnce(ctx)
	wantCode(t, "EnrolOnce(not allow-listed)", err, api.CodeNotAllowed)

	// key not in the same TPM: phone a's EK certificate (allow-listed)
	// with phone b's identity key.
	a, b := newPhone(t, mfg), newPhone(t, mfg)
	f.allow(t, a.allowEntry(1))
	for _, p := range []*phone{a, b} {
		if err := p.creds.CreateIdentity(false); err != nil {
			t.Fatalf("CreateIdentity error %v", err)
		}
	}
	attA, err := a.creds.IdentityAttestation()
	if err != nil {
		t.Fatalf("IdentityAttestation error %v", err)
	}
	attB, err := b.creds.IdentityAttestation()
	if err != nil {
		t.Fatalf("IdentityAttestation error %v", err)
	}
	csrB, err := b.creds.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		t.Fatalf("CreateCSR error %v", err)
	}
	anon := f.anonClient(t)
	start, err := anon.EnrolStart(ctx, api.EnrolStartRequest{EKType: attA.EKType.String(), EKCert: attA.EKCertificate,
		IdentityPublic: attB.IdentityPublic, CSR: csrB})
	if err != nil {
		t.Fatalf("EnrolStart(a's EK, b's key) error %v (the server cannot tell yet)", err)
	}
	// Neither TPM opens it: a's does not hold b's key, b's is not a's EK.
	if _, err := a.creds.ActivateCredential(attA.EKType, start.CredentialBlob, start.EncryptedSecret); err == nil {
		t.Fatalf("a's TPM activated a credential for b's key")
	}
	if _, err := b.creds.ActivateCredential(attA.EKType, start.CredentialBlob, start.EncryptedSecret); err == nil {
		t.Fatalf("b's TPM activated a credential for a's EK")
	}
	guess := make(api.Secret, 32)
	if _, err := rand.Read(guess); err != nil {
		t.Fatalf("rand: %v", err)
	}
	_, err = anon.EnrolFinish(ctx, api.EnrolFinishRequest{ChallengeID: start.ChallengeID, Secret: guess})
	wantCode(t, "EnrolFinish(guessed secret)", err, api.CodeActivation)

	// The CSR's key is not the identity key: refused at start.
	csrA, err := a.creds.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		t.Fatalf("CreateCSR error %v", err)
	}
	_, err = anon.EnrolStart(ctx, api.EnrolStartRequest{EKType: attA.EKType.String(), EKCert: attA.EKCertificate,
		IdentityPublic: attB.IdentityPublic, CSR: csrA})
	wantCode(t, "EnrolStart(CSR of another key)", err, api.CodeIdentityKey)
	// EK type that does not match the certificate.
	_, err = anon.EnrolStart(ctx, api.EnrolStartRequest{EKType: api.EKTypeRSA2048, EKCert: attA.EKCertificate,
		IdentityPublic: attA.IdentityPublic, CSR: csrA})
	wantCode(t, "EnrolStart(wrong EK type)", err, api.CodeNotEK)

	// replayed enrolment: a's own round, done right, then its finish
	// request sent again.
	start, err = anon.EnrolStart(ctx, api.EnrolStartRequest{EKType: attA.EKType.String(), EKCert: attA.EKCertificate,
		IdentityPublic: attA.IdentityPublic, CSR: csrA})
	if err != nil {
		t.Fatalf("EnrolStart(a) error %v", err)
	}
	secret, err := a.creds.ActivateCredential(attA.EKType, start.CredentialBlob, start.EncryptedSecret)
	if err != nil {
		t.Fatalf("ActivateCredential(a) error %v", err)
	}
	fin := api.EnrolFinishRequest{ChallengeID: start.ChallengeID, Secret: api.Secret(bytes.Clone(secret))}
	first, err := anon.EnrolFinish(ctx, fin)
	if err != nil {
		t.Fatalf("EnrolFinish(a) error %v", err)
	}
	_, err = anon.EnrolFinish(ctx, fin)
	wantCode(t, "EnrolFinish replayed", err, api.CodeReplay)

	// expired: start, let the server's clock pass the challenge's life.
	start, err = anon.EnrolStart(ctx, api.EnrolStartRequest{EKType: attA.EKType.String(), EKCert: attA.EKCertificate,
		IdentityPublic: attA.IdentityPublic, CSR: csrA})
	if err != nil {
		t.Fatalf("EnrolStart(a, again) error %v", err)
	}
	secret, err = a.creds.ActivateCredential(attA.EKType, start.CredentialBlob, start.EncryptedSecret)
	if err != nil {
		t.Fatalf("ActivateCredential error %v", err)
	}
	f.offset.Add(int64(3 * time.Minute))
	_, err = anon.EnrolFinish(ctx, api.EnrolFinishRequest{ChallengeID: start.ChallengeID, Secret: api.Secret(bytes.Clone(secret))})
	wantCode(t, "EnrolFinish after expiry", err, api.CodeExpired)

	// Only a's proper round made a device.
	inv, err := f.admin.Inventory(ctx, "", 0)
	if err != nil || len(inv.Devices) != 1 || inv.Devices[0].ID != first.DeviceID {
		t.Fatalf("Inventory = %+v, %v, want only %s", inv, err, first.DeviceID)
	}
	m, err := f.admin.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics error %v", err)
	}
	for _, name := range []string{"refused.enrol_start.untrusted_ek", "refused.enrol_start.not_allowed",
		"refused.enrol_finish.activation", "refused.enrol_start.identity_key", "refused.enrol_finish.replay",
		"refused.enrol_finish.expired", "refused.enrol_start.not_ek"} {
		if m.Counters[name] != 1 {
			t.Errorf("metric %s = %d, want 1", name, m.Counters[name])
		}
	}
}

func (f *fleet) anonClient(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: f.url(), ServerName: "fleet.test", Roots: f.serverRoots})
	if err != nil {
		t.Fatalf("client.New error %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func wantCode(t testing.TB, what string, err error, code api.Code) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s error = %v, want code %s", what, err, code)
	}
}

// TestRetryKeepsWhatItHas: a phone not yet on the list keeps retrying
// until an admin adds it; once enrolled, a renewal that fails (server
// gone) leaves its certificate in place.
func TestRetryKeepsWhatItHas(t *testing.T) {
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	f := startFleet(t, backends(t)[0].open(t), initPKI(t), mfg)
	p := newPhone(t, mfg)
	c := f.provisioner(t, p)
	done := make(chan error, 1)
	var st *Status
	go func() {
		var err error
		st, err = c.Enrol(ctx)
		done <- err
	}()
	// Wait until the server has refused it at least twice, then list it.
	for {
		m, err := f.admin.Metrics(ctx)
		if err != nil {
			t.Fatalf("Metrics error %v", err)
		}
		if m.Counters["refused.enrol_start.not_allowed"] >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.allow(t, p.allowEntry(0))
	if err := <-done; err != nil {
		t.Fatalf("Enrol error %v", err)
	}
	id, err := p.creds.Identity()
	if err != nil {
		t.Fatalf("Identity error %v", err)
	}
	f.stop()
	if _, err := c.Renew(ctx); err == nil {
		t.Fatalf("Renew with the server gone = nil error")
	}
	id2, err := p.creds.Identity()
	if err != nil || !bytes.Equal(id2.Certificate[0], id.Certificate[0]) {
		t.Fatalf("after a failed renewal the phone's certificate changed (%v)", err)
	}
	if st2, err := c.Status(); err != nil || st2.DeviceID != st.DeviceID {
		t.Fatalf("Status after a failed renewal = %+v, %v", st2, err)
	}
}

// TestRetireAndRevoke: a revoked phone's certificate is on the CRL and
// its renewal refused; a retired phone's next check-in wipes its
// credentials.
func TestRetireAndRevoke(t *testing.T) {
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	f := startFleet(t, backends(t)[0].open(t), initPKI(t), mfg)
	revoked, retired := newPhone(t, mfg), newPhone(t, mfg)
	f.allow(t, revoked.allowEntry(0), retired.allowEntry(1))
	cr, ct := f.provisioner(t, revoked), f.provisioner(t, retired)
	sr, err := cr.EnrolOnce(ctx)
	if err != nil {
		t.Fatalf("EnrolOnce error %v", err)
	}
	stt, err := ct.EnrolOnce(ctx)
	if err != nil {
		t.Fatalf("EnrolOnce error %v", err)
	}
	if _, err := f.admin.Revoke(ctx, sr.DeviceID, api.ReasonKeyCompromise); err != nil {
		t.Fatalf("Revoke error %v", err)
	}
	id, err := revoked.creds.Identity()
	if err != nil {
		t.Fatalf("Identity error %v", err)
	}
	der, err := f.anonClient(t).CRL(ctx)
	if err != nil {
		t.Fatalf("CRL error %v", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(f.deviceCA) != nil {
		t.Fatalf("CRL does not parse or verify: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(id.Leaf.SerialNumber) != 0 {
		t.Fatalf("CRL entries %+v, want the revoked phone's serial %x", crl.RevokedCertificateEntries, id.Leaf.SerialNumber)
	}
	_, err = cr.Renew(ctx)
	wantCode(t, "Renew revoked", err, api.CodeRevoked)
	_, err = cr.CheckIn(ctx, report())
	wantCode(t, "CheckIn revoked", err, api.CodeRevoked)
	// A revoked TPM cannot enrol again until retired.
	_, err = f.anonClientEnrol(t, cr)
	wantCode(t, "EnrolOnce revoked", err, api.CodeRevoked)

	if _, err := f.admin.Retire(ctx, stt.DeviceID, ""); err != nil {
		t.Fatalf("Retire error %v", err)
	}
	if _, err := ct.CheckIn(ctx, report()); !errors.Is(err, ErrRetired) {
		t.Fatalf("CheckIn retired error = %v, want ErrRetired", err)
	}
	if _, err := retired.creds.Identity(); err == nil {
		t.Fatalf("the retired phone still has an identity after the wipe")
	}
	if _, err := retired.creds.Get("anything"); !errors.Is(err, credstore.ErrWiped) && err == nil {
		t.Fatalf("credential store usable after the wipe")
	}
}

// anonClientEnrol runs a fresh enrolment round for c's phone, even though
// it holds a certificate.
func (f *fleet) anonClientEnrol(t testing.TB, c *Client) (*Status, error) {
	t.Helper()
	return c.EnrolOnce(ctx)
}

// TestReenrolSameKey: a phone that lost the answer to its enrolment (it
// never imported the certificate) enrols again with the same key and gets
// a new certificate for the same device; another key on the same TPM is
// refused until an admin retires the device, after which it enrols as a
// new device.
func TestReenrolSameKey(t *testing.T) {
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	f := startFleet(t, backends(t)[0].open(t), initPKI(t), mfg)
	p := newPhone(t, mfg)
	f.allow(t, p.allowEntry(0))
	c := f.provisioner(t, p)
	st1, err := c.EnrolOnce(ctx)
	if err != nil {
		t.Fatalf("EnrolOnce error %v", err)
	}
	st2, err := c.EnrolOnce(ctx)
	if err != nil || st2.DeviceID != st1.DeviceID {
		t.Fatalf("second EnrolOnce = %+v, %v, want device %s", st2, err, st1.DeviceID)
	}
	if err := p.creds.CreateIdentity(true); err != nil {
		t.Fatalf("CreateIdentity(replace) error %v", err)
	}
	_, err = c.EnrolOnce(ctx)
	wantCode(t, "EnrolOnce(new key, same TPM)", err, api.CodeConflict)
	if _, err := f.admin.Retire(ctx, st1.DeviceID, ""); err != nil {
		t.Fatalf("Retire error %v", err)
	}
	st3, err := c.EnrolOnce(ctx)
	if err != nil || st3.DeviceID == st1.DeviceID {
		t.Fatalf("EnrolOnce after retirement = %+v, %v, want a new device", st3, err)
	}
	inv, err := f.admin.Inventory(ctx, "", 0)
	if err != nil || len(inv.Devices) != 2 {
		t.Fatalf("Inventory = %d devices, %v, want 2 (one retired)", len(inv.Devices), err)
	}
}

// TestRun: the polling loop enrols, checks in at the interval the fleet
// names, and ends with ErrRetired, the credentials wiped, once an admin
// retires the phone.
func TestRun(t *testing.T) {
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	f := startFleet(t, backends(t)[0].open(t), initPKI(t), mfg, server.WithCheckInInterval(time.Second))
	p := newPhone(t, mfg)
	f.allow(t, p.allowEntry(0))
	c := f.provisioner(t, p)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(context.Context) (api.Report, error) { return report(), nil }) }()
	var id string
	for {
		inv, err := f.admin.Inventory(ctx, "", 0)
		if err != nil {
			t.Fatalf("Inventory: %v", err)
		}
		if len(inv.Devices) == 1 {
			det, err := f.admin.Device(ctx, inv.Devices[0].ID)
			if err != nil {
				t.Fatalf("Device: %v", err)
			}
			if len(det.Reports) >= 2 {
				id = inv.Devices[0].ID
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := f.admin.Retire(ctx, id, ""); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrRetired) {
		t.Fatalf("Run = %v, want ErrRetired", err)
	}
	if _, err := p.creds.Identity(); err == nil {
		t.Fatalf("identity still there after the retire order")
	}
}
