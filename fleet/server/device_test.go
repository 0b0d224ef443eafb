package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/store"
)

func TestDevice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		t.Run("CheckIn", func(t *testing.T) { testCheckIn(t, b) })
		t.Run("CheckInRefusals", func(t *testing.T) { testCheckInRefusals(t, b) })
		t.Run("Renew", func(t *testing.T) { testRenew(t, b) })
		t.Run("PostureGate", func(t *testing.T) { testPostureGate(t, b) })
		t.Run("RevokeRetire", func(t *testing.T) { testRevokeRetire(t, b) })
	})
}

func testCheckIn(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	d := f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime)
	resp, err := d.c.CheckIn(ctx, d.key, f.report(d))
	if err != nil {
		t.Fatalf("CheckIn error %v", err)
	}
	if resp.Action != api.ActionNone || resp.NextCheckInSeconds != uint32(DefaultCheckInInterval/time.Second) || len(resp.Posture) != 0 {
		t.Fatalf("CheckIn = %+v, want none, %v, no posture", resp, DefaultCheckInInterval)
	}
	rep, err := f.st.LatestReport(ctx, d.id)
	if err != nil {
		t.Fatalf("LatestReport error %v", err)
	}
	if rep.Firmware.SecurityVersion != 5 || rep.Counters["sip_auth_failures"] != 2 || !rep.Lockdown.OK {
		t.Fatalf("stored report = %+v", rep)
	}
	// The stored bytes are what the device signed.
	if err := api.VerifyReport(&d.key.PublicKey, rep.Signed, mustSign(t, d, rep.Signed)); err != nil {
		t.Fatalf("stored report does not verify: %v", err)
	}
	// A second report, later: both in the history, newest first.
	f.advance(time.Minute)
	r2 := f.report(d)
	r2.Firmware.Version = "1.0.1"
	if _, err := d.c.CheckIn(ctx, d.key, r2); err != nil {
		t.Fatalf("second CheckIn error %v", err)
	}
	hist, err := f.st.ReportHistory(ctx, d.id, 10)
	if err != nil || len(hist) != 2 || hist[0].Firmware.Version != "1.0.1" {
		t.Fatalf("ReportHistory = %d reports (%v), want 2 newest first", len(hist), err)
	}
	// Past two-thirds of the certificate's life the answer says renew.
	f.advance(21 * 24 * time.Hour)
	resp, err = d.c.CheckIn(ctx, d.key, f.report(d))
	if err != nil {
		t.Fatalf("CheckIn at 21 days error %v", err)
	}
	if resp.Action != api.ActionRenew {
		t.Fatalf("CheckIn at 21 days of 30 = %q, want %q", resp.Action, api.ActionRenew)
	}
}

func mustSign(t *testing.T, d *softDevice, body []byte) string {
	t.Helper()
	sig, err := api.SignReport(d.key, body)
	if err != nil {
		t.Fatalf("SignReport: %v", err)
	}
	return sig
}

// testCheckInRefusals: each bad check-in gets its code and stores nothing.
func testCheckInRefusals(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	d := f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime)
	other := f.newSoftDevice(t, 2, ca.DefaultDeviceLifetime)
	body := func(r api.Report) []byte {
		b, err := api.MarshalReport(r)
		if err != nil {
			t.Fatalf("MarshalReport: %v", err)
		}
		return b
	}
	good := body(f.report(d))
	wrongKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	signWith := func(k *ecdsa.PrivateKey, b []byte) string {
		s, err := api.SignReport(k, b)
		if err != nil {
			t.Fatalf("SignReport: %v", err)
		}
		return s
	}
	otherDev := f.report(d)
	otherDev.DeviceID = string(other.id)
	otherSerial := f.report(d)
	otherSerial.Serial = other.serial
	stale := f.report(d)
	stale.SentAt = f.now().Add(-time.Hour)
	future := f.report(d)
	future.SentAt = f.now().Add(time.Hour)
	spaced := strings.Replace(string(good), `":`, `": `, 1)
	noCert := f.client(t, nil)
	cases := []struct {
		name string
		body []byte
		sig  string
		anon bool
		want api.Code
	}{
		{"no signature", good, "", false, api.CodeBadRequest},
		{"signature by another key", good, signWith(wrongKey, good), false, api.CodeBadRequest},
		{"signature by another device", good, signWith(other.key, good), false, api.CodeBadRequest},
		{"report for another device", body(otherDev), signWith(d.key, body(otherDev)), false, api.CodeBadRequest},
		{"another serial", body(otherSerial), signWith(d.key, body(otherSerial)), false, api.CodeBadRequest},
		{"stale", body(stale), signWith(d.key, body(stale)), false, api.CodeStale},
		{"from the future", body(future), signWith(d.key, body(future)), false, api.CodeStale},
		{"not canonical", []byte(spaced), signWith(d.key, []byte(spaced)), false, api.CodeBadRequest},
		{"oversize", make([]byte, api.MaxReport+1), "x", false, api.CodeTooLarge},
		{"no client certificate", good, signWith(d.key, good), true, api.CodeUnauthenticated},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := d.c
			if tt.anon {
				c = noCert
			}
			_, err := c.CheckInSigned(ctx, tt.body, tt.sig)
			wantCode(t, "CheckInSigned("+tt.name+")", err, tt.want)
			if _, err := f.st.LatestReport(ctx, d.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("after a refused check-in LatestReport error = %v, want ErrNotFound", err)
			}
		})
	}
	// The admin's certificate is no device certificate.
	_, err = f.admin.CheckInSigned(ctx, good, signWith(d.key, good))
	wantCode(t, "CheckIn with the admin certificate", err, api.CodeUnauthenticated)
	// A replay of an accepted report is stale.
	sig := signWith(d.key, good)
	if _, err := d.c.CheckInSigned(ctx, good, sig); err != nil {
		t.Fatalf("CheckInSigned(good) error %v", err)
	}
	_, err = d.c.CheckInSigned(ctx, good, sig)
	wantCode(t, "replayed check-in", err, api.CodeStale)
	if m := f.srv.Metrics(); m["refused.checkin.stale"] != 3 || m["refused.checkin.bad_request"] != 6 || m["checked_in"] != 1 {
		t.Fatalf("metrics = %v, want 3 stale, 6 bad_request, 1 checked_in", m)
	}
}

func testRenew(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	d := f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime)
	csr := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		if err != nil {
			t.Fatalf("CreateCertificateRequest: %v", err)
		}
		return der
	}
	resp, err := d.c.Renew(ctx, csr(d.key))
	if err != nil {
		t.Fatalf("Renew error %v", err)
	}
	leaf, err := x509.ParseCertificate(resp.Chain[0])
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	if !d.key.PublicKey.Equal(leaf.PublicKey) || leaf.Subject.CommonName != string(d.id) || leaf.SerialNumber.Cmp(d.cert.Leaf.SerialNumber) == 0 {
		t.Fatalf("renewed certificate %v serial %x, want the same key and device, a new serial", leaf.Subject, leaf.SerialNumber)
	}
	if want := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3); resp.RenewAfter.Sub(want).Abs() > time.Second {
		t.Fatalf("RenewAfter = %v, want %v", resp.RenewAfter, want)
	}
	dev, err := f.st.GetDevice(ctx, d.id)
	if err != nil {
		t.Fatalf("GetDevice error %v", err)
	}
	if dev.CurrentCertSerial.BigInt().Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("device's current certificate %s, want the renewed one %x", dev.CurrentCertSerial, leaf.SerialNumber)
	}
	// A CSR with another key is refused.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	_, err = d.c.Renew(ctx, csr(other))
	wantCode(t, "Renew(CSR of another key)", err, api.CodeIdentityKey)
	_, err = d.c.Renew(ctx, []byte("not a CSR"))
	wantCode(t, "Renew(garbage)", err, api.CodeBadRequest)
	// Renewing in a loop hits the live-certificate bound.
	var lastErr error
	for i := 0; i < store.MaxLiveCertsPerDevice+1 && lastErr == nil; i++ {
		_, lastErr = d.c.Renew(ctx, csr(d.key))
	}
	wantCode(t, "Renew in a loop", lastErr, api.CodeLimit)
}

func testPostureGate(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	d := f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, d.key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	if err := f.admin.SetSetting(ctx, api.SettingMinSecurityVersion, "6"); err != nil {
		t.Fatalf("SetSetting error %v", err)
	}
	// No report yet, a minimum set: refused.
	_, err = d.c.Renew(ctx, csr)
	wantCode(t, "Renew with no report", err, api.CodePosture)
	// Firmware 5 < 6: refused, and the check-in says why.
	resp, err := d.c.CheckIn(ctx, d.key, f.report(d))
	if err != nil {
		t.Fatalf("CheckIn error %v", err)
	}
	if len(resp.Posture) != 1 || !strings.Contains(resp.Posture[0], "below the fleet's minimum 6") {
		t.Fatalf("CheckIn posture = %q", resp.Posture)
	}
	_, err = d.c.Renew(ctx, csr)
	wantCode(t, "Renew below the minimum", err, api.CodePosture)
	// Patched but drifted: refused.
	f.advance(time.Second)
	r := f.report(d)
	r.Firmware.SecurityVersion = 6
	r.Lockdown = api.Lockdown{OK: false, Findings: []string{"nft table hardphone missing"}}
	if _, err := d.c.CheckIn(ctx, d.key, r); err != nil {
		t.Fatalf("CheckIn error %v", err)
	}
	_, err = d.c.Renew(ctx, csr)
	wantCode(t, "Renew with lockdown drift", err, api.CodePosture)
	// Patched and clean: renewed.
	f.advance(time.Second)
	r = f.report(d)
	r.Firmware.SecurityVersion = 6
	if _, err := d.c.CheckIn(ctx, d.key, r); err != nil {
		t.Fatalf("CheckIn error %v", err)
	}
	if _, err := d.c.Renew(ctx, csr); err != nil {
		t.Fatalf("Renew when patched and clean error %v", err)
	}
	// A clean report from long ago is no longer enough.
	f.advance(2*DefaultCheckInInterval + 2*time.Minute)
	_, err = d.c.Renew(ctx, csr)
	wantCode(t, "Renew with a stale report", err, api.CodePosture)
	// Deleting the minimum lifts that part of the gate.
	if err := f.admin.DeleteSetting(ctx, api.SettingMinSecurityVersion); err != nil {
		t.Fatalf("DeleteSetting error %v", err)
	}
	if _, err := f.admin.Setting(ctx, api.SettingMinSecurityVersion); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("Setting after delete error = %v, want not_found", err)
	}
}

// testRevokeRetire: a revoked device can neither renew nor check in and
// its certificate is on the CRL; a retired one is told to wipe.
func testRevokeRetire(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	d1 := f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime)
	d2 := f.newSoftDevice(t, 2, ca.DefaultDeviceLifetime)
	crl0 := fetchCRL(t, f)
	if len(crl0.RevokedCertificateEntries) != 0 {
		t.Fatalf("CRL of a fresh fleet has %d entries", len(crl0.RevokedCertificateEntries))
	}
	dv, err := f.admin.Revoke(ctx, string(d1.id), api.ReasonKeyCompromise)
	if err != nil {
		t.Fatalf("Revoke error %v", err)
	}
	if dv.State != "revoked" {
		t.Fatalf("Revoke = state %q", dv.State)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, d1.key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	_, err = d1.c.Renew(ctx, csr)
	wantCode(t, "Renew revoked", err, api.CodeRevoked)
	_, err = d1.c.CheckIn(ctx, d1.key, f.report(d1))
	wantCode(t, "CheckIn revoked", err, api.CodeRevoked)
	crl1 := fetchCRL(t, f)
	if len(crl1.RevokedCertificateEntries) != 1 || crl1.RevokedCertificateEntries[0].SerialNumber.Cmp(d1.cert.Leaf.SerialNumber) != 0 ||
		crl1.RevokedCertificateEntries[0].ReasonCode != 1 || crl1.Number.Cmp(crl0.Number) <= 0 {
		t.Fatalf("CRL after revoke: number %v (before %v), entries %+v", crl1.Number, crl0.Number, crl1.RevokedCertificateEntries)
	}
	// Revoking again changes nothing.
	if _, err := f.admin.Revoke(ctx, string(d1.id), ""); err != nil {
		t.Fatalf("second Revoke error %v", err)
	}
	// Retire d2: its check-in is told to wipe; its renewal refused.
	if _, err := f.admin.Retire(ctx, string(d2.id), ""); err != nil {
		t.Fatalf("Retire error %v", err)
	}
	resp, err := d2.c.CheckIn(ctx, d2.key, f.report(d2))
	if err != nil || resp.Action != api.ActionRetire {
		t.Fatalf("CheckIn retired = %+v, %v, want action retire", resp, err)
	}
	csr2, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, d2.key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	_, err = d2.c.Renew(ctx, csr2)
	wantCode(t, "Renew retired", err, api.CodeRetired)
	if crl := fetchCRL(t, f); len(crl.RevokedCertificateEntries) != 2 {
		t.Fatalf("CRL after retire has %d entries, want 2", len(crl.RevokedCertificateEntries))
	}
	// A retired device cannot go back.
	_, err = f.admin.Revoke(ctx, string(d2.id), "")
	wantCode(t, "Revoke retired", err, api.CodeConflict)
	_, err = f.admin.Revoke(ctx, string(store.NewDeviceID()), "")
	wantCode(t, "Revoke unknown", err, api.CodeNotFound)
	// A replica on the same store serves a CRL with both.
	st2 := f.st
	if b.replica != nil {
		st2 = b.replica(t, f.st)
	}
	f2 := newFixture(t, st2, f.dir)
	if crl := fetchCRL(t, f2); len(crl.RevokedCertificateEntries) != 2 {
		t.Fatalf("replica's CRL has %d entries, want 2", len(crl.RevokedCertificateEntries))
	}
	// And one revocation through the replica reaches the first server's
	// CRL, which it had cached.
	d3 := f.newSoftDevice(t, 3, ca.DefaultDeviceLifetime)
	if _, err := f2.admin.Revoke(ctx, string(d3.id), ""); err != nil {
		t.Fatalf("Revoke via replica error %v", err)
	}
	// A replica compares the token at most once a second.
	f.advance(2 * time.Second)
	if crl := fetchCRL(t, f); len(crl.RevokedCertificateEntries) != 3 {
		t.Fatalf("first server's CRL after a revocation on the replica has %d entries, want 3", len(crl.RevokedCertificateEntries))
	}
}

func fetchCRL(t *testing.T, f *fixture) *x509.RevocationList {
	t.Helper()
	der, err := f.client(t, nil).CRL(ctx)
	if err != nil {
		t.Fatalf("CRL error %v", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(f.deviceCA.Certificate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}
