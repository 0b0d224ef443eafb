package storetest

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// seqOf is the sequence half of a serial.
func seqOf(s store.CertSerial) uint64 { return binary.BigEndian.Uint64(s[:8]) }

func testCerts(t *testing.T, b Backend) {
	s := open(t, b)
	// Serials: valid, increasing sequence, round-trip through big.Int.
	var prev store.CertSerial
	for i := range 5 {
		serial, err := s.NextCertSerial(ctx)
		noErr(t, "NextCertSerial", err)
		noErr(t, "CertSerial.Validate", serial.Validate())
		if i > 0 && seqOf(serial) <= seqOf(prev) {
			t.Fatalf("NextCertSerial() = %s after %s, want a higher sequence", serial, prev)
		}
		back, err := store.CertSerialFromBigInt(serial.BigInt())
		noErr(t, "CertSerialFromBigInt", err)
		equal(t, "CertSerialFromBigInt(BigInt())", back, serial)
		prev = serial
	}
	// CRL numbers start at 1 and increase by one.
	for want := uint64(1); want <= 3; want++ {
		n, err := s.NextCRLNumber(ctx)
		noErr(t, "NextCRLNumber", err)
		equal(t, "NextCRLNumber", n, want)
	}

	d, first := enrol(t, s, 0, t0)
	renewal := newCert(t, s, d.ID, at(20*24*time.Hour))
	renewal.DER = nil
	noErr(t, "AddCert", s.AddCert(ctx, renewal))
	got, err := s.GetDevice(ctx, d.ID)
	noErr(t, "GetDevice", err)
	d.CurrentCertSerial, d.CertNotAfter = renewal.Serial, norm(renewal.NotAfter)
	equal(t, "GetDevice after AddCert", got, d)
	gc, err := s.GetCert(ctx, renewal.Serial)
	noErr(t, "GetCert", err)
	equal(t, "GetCert(renewal)", gc, storedCert(renewal))
	certs, err := s.ListDeviceCerts(ctx, d.ID, 10)
	noErr(t, "ListDeviceCerts", err)
	equal(t, "ListDeviceCerts", certs, []store.Cert{storedCert(renewal), first})
	certs, err = s.ListDeviceCerts(ctx, d.ID, 1)
	noErr(t, "ListDeviceCerts(limit 1)", err)
	equal(t, "ListDeviceCerts(limit 1)", certs, []store.Cert{storedCert(renewal)})

	// Revoking one certificate leaves the device enrolled; revoking it
	// again keeps the first revocation.
	noErr(t, "RevokeCert", s.RevokeCert(ctx, first.Serial, store.ReasonSuperseded, at(21*24*time.Hour)))
	wantErr(t, "RevokeCert(again)", s.RevokeCert(ctx, first.Serial, store.ReasonKeyCompromise, at(22*24*time.Hour)), store.ErrState)
	gc, err = s.GetCert(ctx, first.Serial)
	noErr(t, "GetCert", err)
	equal(t, "GetCert(revoked)", gc, revoked(first, at(21*24*time.Hour), store.ReasonSuperseded))
	got, err = s.GetDevice(ctx, d.ID)
	noErr(t, "GetDevice", err)
	equal(t, "GetDevice(after RevokeCert).State", got.State, store.StateEnrolled)
}

func testCertRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	d, first := enrol(t, s, 0, t0)
	gone, _ := enrol(t, s, 1, t0)
	noErr(t, "SetDeviceState", s.SetDeviceState(ctx, gone.ID, store.StateRevoked, store.ReasonKeyCompromise, at(time.Hour)))
	before := snap(t, s)

	tests := []struct {
		name string
		f    func(*store.Cert)
		want error
	}{
		{"zero serial", func(c *store.Cert) { c.Serial = store.CertSerial{} }, store.ErrInvalid},
		{"bad device ID", func(c *store.Cert) { c.DeviceID = "dev-1" }, store.ErrInvalid},
		{"backwards validity", func(c *store.Cert) { c.NotBefore, c.NotAfter = c.NotAfter, c.NotBefore }, store.ErrInvalid},
		{"reason without revocation", func(c *store.Cert) { c.Reason = store.ReasonSuperseded }, store.ErrInvalid},
		{"DER too large", func(c *store.Cert) { c.DER = make([]byte, store.MaxCertDER+1) }, store.ErrInvalid},
		{"unknown device", func(c *store.Cert) { c.DeviceID = store.NewDeviceID() }, store.ErrNotFound},
		{"revoked device", func(c *store.Cert) { c.DeviceID = gone.ID }, store.ErrState},
		{"serial taken", func(c *store.Cert) { c.Serial = first.Serial }, store.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCert(t, s, d.ID, at(time.Hour))
			tt.f(&c)
			wantErr(t, "AddCert("+tt.name+")", s.AddCert(ctx, c), tt.want)
			unchanged(t, s, before, tt.name)
		})
	}
	unknown, err := store.NewCertSerial(1 << 50)
	noErr(t, "NewCertSerial", err)
	wantErr(t, "RevokeCert(unknown)", s.RevokeCert(ctx, unknown, store.ReasonUnspecified, t0), store.ErrNotFound)
	wantErr(t, "RevokeCert(bad reason)", s.RevokeCert(ctx, first.Serial, 2, t0), store.ErrInvalid)
	wantErr(t, "RevokeCert(zero time)", s.RevokeCert(ctx, first.Serial, 0, time.Time{}), store.ErrInvalid)
	_, err = s.GetCert(ctx, unknown)
	wantErr(t, "GetCert(unknown)", err, store.ErrNotFound)
	_, err = s.ListDeviceCerts(ctx, store.NewDeviceID(), 1)
	wantErr(t, "ListDeviceCerts(unknown)", err, store.ErrNotFound)
	for _, limit := range []int{0, -1, store.MaxPageSize + 1} {
		_, err = s.ListDeviceCerts(ctx, d.ID, limit)
		wantErr(t, fmt.Sprintf("ListDeviceCerts(limit %d)", limit), err, store.ErrInvalid)
	}
	unchanged(t, s, before, "refused revocations")

	// Serials of another form are refused by the parsers.
	for _, str := range []string{"", "00", strings.Repeat("0", 32), strings.Repeat("f", 32), strings.Repeat("g", 32)} {
		if _, err := store.ParseCertSerial(str); err == nil {
			t.Fatalf("ParseCertSerial(%q) = nil error, want refusal", str)
		}
	}
}

func testListRevoked(t *testing.T, b Backend) {
	s := open(t, b)
	// Five devices, each with a certificate valid t0..t0+30d and a
	// renewal valid t0+20d..t0+50d. Devices 0..2 are revoked at t0+25d
	// (both certificates); device 3's first certificate is revoked as
	// superseded at t0+21d.
	var want []store.Cert
	var renewals []store.Cert
	for i := range 5 {
		d, first := enrol(t, s, i, t0)
		r := newCert(t, s, d.ID, at(20*24*time.Hour))
		noErr(t, "AddCert", s.AddCert(ctx, r))
		renewals = append(renewals, r)
		switch {
		case i < 3:
			noErr(t, "SetDeviceState", s.SetDeviceState(ctx, d.ID, store.StateRevoked, store.ReasonKeyCompromise, at(25*24*time.Hour)))
			want = append(want, revoked(first, at(25*24*time.Hour), store.ReasonKeyCompromise),
				revoked(r, at(25*24*time.Hour), store.ReasonKeyCompromise))
		case i == 3:
			noErr(t, "RevokeCert", s.RevokeCert(ctx, first.Serial, store.ReasonSuperseded, at(21*24*time.Hour)))
			want = append(want, revoked(first, at(21*24*time.Hour), store.ReasonSuperseded))
		}
	}
	sortCerts(want)
	list := func(from time.Time, limit int) []store.Cert {
		var all []store.Cert
		for p := (store.PageRequest{Limit: limit}); ; {
			page, err := s.ListRevoked(ctx, from, p)
			noErr(t, "ListRevoked", err)
			if len(page.Items) > limit {
				t.Fatalf("ListRevoked(limit %d) returned %d", limit, len(page.Items))
			}
			all = append(all, page.Items...)
			if p.After = page.Next; p.After == "" {
				return all
			}
		}
	}
	equal(t, "ListRevoked(all, pages of 2)", list(t0, 2), want)
	equal(t, "ListRevoked(all, one page)", list(t0, store.MaxPageSize), want)
	// From t0+40d, the first certificates (expired t0+30d) drop off. A
	// certificate expiring exactly at the bound stays.
	var later []store.Cert
	for _, c := range want {
		if !c.NotAfter.Before(norm(at(40 * 24 * time.Hour))) {
			later = append(later, c)
		}
	}
	if len(later) != 3 {
		t.Fatalf("test set up %d revoked renewals, want 3", len(later))
	}
	equal(t, "ListRevoked(from t0+40d)", list(at(40*24*time.Hour), 2), later)
	equal(t, "ListRevoked(from renewal expiry)", list(renewals[0].NotAfter, 2), later)
	equal(t, "ListRevoked(after everything expired)", list(at(60*24*time.Hour), 2), []store.Cert(nil))
	_, err := s.ListRevoked(ctx, time.Time{}, store.PageRequest{Limit: 1})
	wantErr(t, "ListRevoked(zero time)", err, store.ErrInvalid)
	_, err = s.ListRevoked(ctx, t0, store.PageRequest{Limit: 1, After: "xyz"})
	wantErr(t, "ListRevoked(bad cursor)", err, store.ErrInvalid)
}

// testLiveCertBound: a device renewing in a loop stops at
// MaxLiveCertsPerDevice live certificates; revoked or expired ones make
// room.
func testLiveCertBound(t *testing.T, b Backend) {
	s := open(t, b)
	d, first := enrol(t, s, 0, t0)
	var renewals []store.Cert
	for i := 1; i < store.MaxLiveCertsPerDevice; i++ {
		c := newCert(t, s, d.ID, at(time.Duration(i)*time.Hour))
		noErr(t, fmt.Sprintf("AddCert(%d)", i), s.AddCert(ctx, c))
		renewals = append(renewals, c)
	}
	before := snap(t, s)
	over := newCert(t, s, d.ID, at(10*time.Hour))
	wantErr(t, "AddCert(one over the bound)", s.AddCert(ctx, over), store.ErrLimit)
	unchanged(t, s, before, "AddCert over the bound")
	noErr(t, "RevokeCert", s.RevokeCert(ctx, first.Serial, store.ReasonSuperseded, at(10*time.Hour)))
	noErr(t, "AddCert(after a revocation)", s.AddCert(ctx, over))
	// At a NotBefore past every expiry, nothing counts.
	late := newCert(t, s, d.ID, renewals[len(renewals)-1].NotAfter)
	noErr(t, "AddCert(after every certificate expired)", s.AddCert(ctx, late))
}

// sortCerts sorts by serial, the order of ListRevoked.
func sortCerts(cs []store.Cert) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && string(cs[j].Serial[:]) < string(cs[j-1].Serial[:]); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}
