package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

func testDevices(t *testing.T, b Backend) {
	s := open(t, b)
	var devs []store.Device
	for i := range 5 {
		d, c := enrol(t, s, i, at(time.Duration(i)*time.Minute))
		devs = append(devs, d)
		got, err := s.GetDevice(ctx, d.ID)
		noErr(t, "GetDevice", err)
		equal(t, "GetDevice(new)", got, d)
		got, err = s.GetDeviceByEK(ctx, d.EK)
		noErr(t, "GetDeviceByEK", err)
		equal(t, "GetDeviceByEK(new)", got, d)
		gc, err := s.GetCert(ctx, c.Serial)
		noErr(t, "GetCert", err)
		equal(t, "GetCert(first)", gc, c)
		certs, err := s.ListDeviceCerts(ctx, d.ID, 10)
		noErr(t, "ListDeviceCerts", err)
		equal(t, "ListDeviceCerts(new)", certs, []store.Cert{c})
	}
	_, err := s.GetDevice(ctx, store.NewDeviceID())
	wantErr(t, "GetDevice(unknown)", err, store.ErrNotFound)
	_, err = s.GetDeviceByEK(ctx, ek(99))
	wantErr(t, "GetDeviceByEK(unknown)", err, store.ErrNotFound)
	_, err = s.GetDevice(ctx, "dev-../../etc")
	wantErr(t, "GetDevice(bad ID)", err, store.ErrInvalid)

	// Paging in ID order sees each device once.
	seen := map[store.DeviceID]store.Device{}
	var last store.DeviceID
	for p := (store.PageRequest{Limit: 2}); ; {
		page, err := s.ListDevices(ctx, p)
		noErr(t, "ListDevices", err)
		if len(page.Items) > 2 {
			t.Fatalf("ListDevices(limit 2) returned %d", len(page.Items))
		}
		for _, d := range page.Items {
			if d.ID <= last {
				t.Fatalf("ListDevices out of order: %s after %s", d.ID, last)
			}
			last = d.ID
			seen[d.ID] = d
		}
		if p.After = page.Next; p.After == "" {
			break
		}
	}
	if len(seen) != len(devs) {
		t.Fatalf("ListDevices saw %d devices, want %d", len(seen), len(devs))
	}
	for _, d := range devs {
		equal(t, "ListDevices item", seen[d.ID], d)
	}
	page, err := s.ListDevices(ctx, store.PageRequest{Limit: store.MaxPageSize})
	noErr(t, "ListDevices(all)", err)
	equal(t, "ListDevices(all).Next", page.Next, "")
	for _, p := range []store.PageRequest{{Limit: 0}, {Limit: 1, After: "nope"}} {
		_, err := s.ListDevices(ctx, p)
		wantErr(t, fmt.Sprintf("ListDevices(%+v)", p), err, store.ErrInvalid)
	}
}

func testDeviceRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	existing, _ := enrol(t, s, 0, t0)
	allow(t, s, 1, 2)
	before := snap(t, s)

	type mod func(*store.Device, *store.Cert)
	tests := []struct {
		name string
		f    mod
		want error
	}{
		{"bad ID", func(d *store.Device, c *store.Cert) { d.ID = "dev-XYZ"; c.DeviceID = d.ID }, store.ErrInvalid},
		{"bad serial", func(d *store.Device, _ *store.Cert) { d.Serial = "a/b" }, store.ErrInvalid},
		{"bad model", func(d *store.Device, _ *store.Cert) { d.Model = "" }, store.ErrInvalid},
		{"bad group", func(d *store.Device, _ *store.Cert) { d.Group = "g\x00" }, store.ErrInvalid},
		{"zero EK", func(d *store.Device, _ *store.Cert) { d.EK = store.EKHash{} }, store.ErrInvalid},
		{"bad public key", func(d *store.Device, _ *store.Cert) { d.IdentityPublicKey = []byte{0x30, 0} }, store.ErrInvalid},
		{"state revoked", func(d *store.Device, _ *store.Cert) { d.State = store.StateRevoked }, store.ErrInvalid},
		{"unknown state", func(d *store.Device, _ *store.Cert) { d.State = "pending" }, store.ErrInvalid},
		{"no enrol time", func(d *store.Device, _ *store.Cert) { d.EnrolledAt = time.Time{} }, store.ErrInvalid},
		{"cert for another device", func(_ *store.Device, c *store.Cert) { c.DeviceID = store.NewDeviceID() }, store.ErrInvalid},
		{"cert zero serial", func(_ *store.Device, c *store.Cert) { c.Serial = store.CertSerial{} }, store.ErrInvalid},
		{"cert ends before it starts", func(_ *store.Device, c *store.Cert) { c.NotAfter = c.NotBefore }, store.ErrInvalid},
		{"cert already revoked", func(_ *store.Device, c *store.Cert) { r := t0; c.RevokedAt = &r; c.Reason = 1 }, store.ErrInvalid},
		{"cert DER too large", func(_ *store.Device, c *store.Cert) { c.DER = make([]byte, store.MaxCertDER+1) }, store.ErrInvalid},
		{"current cert mismatch", func(d *store.Device, _ *store.Cert) { d.CurrentCertSerial, _ = store.NewCertSerial(1 << 40) }, store.ErrInvalid},
		{"EK not on the allow-list", func(d *store.Device, _ *store.Cert) { d.EK = ek(50) }, store.ErrNotAllowed},
		{"same TPM twice", func(d *store.Device, _ *store.Cert) { d.EK = existing.EK }, store.ErrExists},
		{"same serial twice", func(d *store.Device, _ *store.Cert) { d.Serial = existing.Serial }, store.ErrExists},
		{"same ID twice", func(d *store.Device, c *store.Cert) { d.ID = existing.ID; c.DeviceID = d.ID }, store.ErrExists},
		{"same cert serial twice", func(_ *store.Device, c *store.Cert) { c.Serial = existing.CurrentCertSerial }, store.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, c := newDevice(t, s, 1, t0)
			tt.f(&d, &c)
			wantErr(t, "CreateDevice("+tt.name+")", s.CreateDevice(ctx, d, c), tt.want)
			unchanged(t, s, before, tt.name)
			if tt.want != store.ErrInvalid {
				// The certificate of a refused enrolment was not kept.
				if _, err := s.GetCert(ctx, c.Serial); c.Serial != existing.CurrentCertSerial && err == nil {
					t.Fatalf("certificate %s of a refused enrolment was stored", c.Serial)
				}
			}
		})
	}
	// The same device and certificate, valid, now go in.
	d, c := newDevice(t, s, 1, t0)
	noErr(t, "CreateDevice(valid)", s.CreateDevice(ctx, d, c))
}

func testDeviceStates(t *testing.T, b Backend) {
	s := open(t, b)
	tests := []struct {
		name  string
		moves []store.DeviceState
		want  error // of the last move
	}{
		{"enrolled to revoked", []store.DeviceState{store.StateRevoked}, nil},
		{"enrolled to retired", []store.DeviceState{store.StateRetired}, nil},
		{"revoked to retired", []store.DeviceState{store.StateRevoked, store.StateRetired}, nil},
		{"same state", []store.DeviceState{store.StateEnrolled}, nil},
		{"revoked again", []store.DeviceState{store.StateRevoked, store.StateRevoked}, nil},
		{"revoked back to enrolled", []store.DeviceState{store.StateRevoked, store.StateEnrolled}, store.ErrState},
		{"retired back to enrolled", []store.DeviceState{store.StateRetired, store.StateEnrolled}, store.ErrState},
		{"retired to revoked", []store.DeviceState{store.StateRetired, store.StateRevoked}, store.ErrState},
		{"unknown state", []store.DeviceState{"lost"}, store.ErrInvalid},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, first := enrol(t, s, i, t0)
			renewal := newCert(t, s, d.ID, at(time.Hour))
			noErr(t, "AddCert", s.AddCert(ctx, renewal))
			d.CurrentCertSerial, d.CertNotAfter = renewal.Serial, norm(renewal.NotAfter)
			want := d
			var err error
			for j, to := range tt.moves {
				when := at(time.Duration(j+2) * time.Hour)
				before := snap(t, s)
				err = s.SetDeviceState(ctx, d.ID, to, store.ReasonKeyCompromise, when)
				if j < len(tt.moves)-1 {
					noErr(t, fmt.Sprintf("SetDeviceState(%s)", to), err)
				}
				if err != nil {
					unchanged(t, s, before, "refused state change")
					break
				}
				if to != want.State {
					want.State, want.StateChangedAt = to, norm(when)
				}
			}
			wantErr(t, fmt.Sprintf("SetDeviceState(%v) last move", tt.moves), err, tt.want)
			got, gerr := s.GetDevice(ctx, d.ID)
			noErr(t, "GetDevice", gerr)
			equal(t, "GetDevice after moves", got, want)
			// A device that left enrolled has every certificate revoked
			// once, at the time of the first move away.
			certs, cerr := s.ListDeviceCerts(ctx, d.ID, 10)
			noErr(t, "ListDeviceCerts", cerr)
			wantCerts := []store.Cert{storedCert(renewal), first}
			if want.State != store.StateEnrolled {
				when := at(2 * time.Hour)
				wantCerts = []store.Cert{revoked(renewal, when, store.ReasonKeyCompromise), revoked(first, when, store.ReasonKeyCompromise)}
			}
			equal(t, "ListDeviceCerts after moves", certs, wantCerts)
		})
	}
	wantErr(t, "SetDeviceState(unknown device)",
		s.SetDeviceState(ctx, store.NewDeviceID(), store.StateRevoked, store.ReasonUnspecified, t0), store.ErrNotFound)
	d, _ := enrol(t, s, 50, t0)
	wantErr(t, "SetDeviceState(reason 6, certificateHold)",
		s.SetDeviceState(ctx, d.ID, store.StateRevoked, 6, t0), store.ErrInvalid)
	wantErr(t, "SetDeviceState(zero time)",
		s.SetDeviceState(ctx, d.ID, store.StateRevoked, store.ReasonUnspecified, time.Time{}), store.ErrInvalid)
}

// testRetireFreesEK: a revoked TPM cannot enrol again; once retired it
// can, as a new device, and the old record stays.
func testRetireFreesEK(t *testing.T, b Backend) {
	s := open(t, b)
	old, _ := enrol(t, s, 0, t0)
	noErr(t, "SetDeviceState(revoked)", s.SetDeviceState(ctx, old.ID, store.StateRevoked, store.ReasonKeyCompromise, at(time.Hour)))
	d, c := newDevice(t, s, 0, at(2*time.Hour))
	wantErr(t, "CreateDevice(revoked TPM)", s.CreateDevice(ctx, d, c), store.ErrExists)
	got, err := s.GetDeviceByEK(ctx, ek(0))
	noErr(t, "GetDeviceByEK(revoked)", err)
	equal(t, "GetDeviceByEK(revoked).ID", got.ID, old.ID)

	noErr(t, "SetDeviceState(retired)", s.SetDeviceState(ctx, old.ID, store.StateRetired, store.ReasonCessationOfOperation, at(3*time.Hour)))
	_, err = s.GetDeviceByEK(ctx, ek(0))
	wantErr(t, "GetDeviceByEK(retired)", err, store.ErrNotFound)
	noErr(t, "CreateDevice(retired TPM again)", s.CreateDevice(ctx, d, c))
	got, err = s.GetDeviceByEK(ctx, ek(0))
	noErr(t, "GetDeviceByEK(re-enrolled)", err)
	equal(t, "GetDeviceByEK(re-enrolled)", got, stored(d, c))
	got, err = s.GetDevice(ctx, old.ID)
	noErr(t, "GetDevice(old)", err)
	equal(t, "GetDevice(old).State", got.State, store.StateRetired)
	// Retiring the old record again changes nothing and does not touch
	// the new device.
	noErr(t, "SetDeviceState(retired again)", s.SetDeviceState(ctx, old.ID, store.StateRetired, store.ReasonUnspecified, at(4*time.Hour)))
	got, err = s.GetDeviceByEK(ctx, ek(0))
	noErr(t, "GetDeviceByEK(after retiring old again)", err)
	equal(t, "GetDeviceByEK(after retiring old again).ID", got.ID, d.ID)
}
