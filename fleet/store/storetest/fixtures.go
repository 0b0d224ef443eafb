package storetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// t0 carries nanoseconds and a zone other than UTC, so every test also
// checks that stores keep times to the microsecond in UTC.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("UTC+2", 2*3600))

// at is t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// norm is what a store gives back for a time.
func norm(t time.Time) time.Time { return store.NormTime(t) }

var (
	keyOnce sync.Once
	keyDER  []byte
)

// pubKey is a DER SubjectPublicKeyInfo of a P-256 key.
func pubKey(t testing.TB) []byte {
	t.Helper()
	keyOnce.Do(func() {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		keyDER, err = x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			panic(err) // a P-256 key always marshals
		}
	})
	return append([]byte(nil), keyDER...)
}

// ek is the EK hash of test TPM i.
func ek(i int) store.EKHash { return sha256.Sum256(fmt.Appendf(nil, "ek-certificate-%d", i)) }

// allowEntry is the allow-list entry of test TPM i.
func allowEntry(i int) store.AllowEntry {
	return store.AllowEntry{EK: ek(i), Serial: fmt.Sprintf("HP1-%06d", i), Model: "hp-desk-1",
		Group: "floor-1", ImportedAt: t0}
}

// allow puts test TPMs on the allow-list.
func allow(t testing.TB, s store.Store, tpms ...int) {
	t.Helper()
	var entries []store.AllowEntry
	for _, i := range tpms {
		entries = append(entries, allowEntry(i))
	}
	if _, err := s.ImportAllowList(ctx, entries); err != nil {
		t.Fatalf("ImportAllowList(%v) error %v", tpms, err)
	}
}

// challenge is a valid challenge for test TPM i created at created.
func challenge(t testing.TB, i int, created time.Time) store.Challenge {
	return store.Challenge{ID: store.NewChallengeID(), EK: ek(i), AKName: append([]byte{0, 0x0b}, make([]byte, 32)...),
		IdentityPublicKey: pubKey(t), SecretHash: sha256.Sum256([]byte("secret")),
		CreatedAt: created, ExpiresAt: created.Add(time.Minute)}
}

// newDevice is a device and first certificate for test TPM i, with a
// serial from s.
func newDevice(t testing.TB, s store.Store, i int, enrolled time.Time) (store.Device, store.Cert) {
	t.Helper()
	e := allowEntry(i)
	d := store.Device{ID: store.NewDeviceID(), Serial: e.Serial, Model: e.Model, Group: e.Group, EK: e.EK,
		IdentityPublicKey: pubKey(t), State: store.StateEnrolled, EnrolledAt: enrolled}
	return d, newCert(t, s, d.ID, enrolled)
}

// newCert is a 30-day certificate for device id from notBefore, with a
// serial from s.
func newCert(t testing.TB, s store.Store, id store.DeviceID, notBefore time.Time) store.Cert {
	t.Helper()
	serial, err := s.NextCertSerial(ctx)
	if err != nil {
		t.Fatalf("NextCertSerial() error %v", err)
	}
	return store.Cert{Serial: serial, DeviceID: id, NotBefore: notBefore, NotAfter: notBefore.Add(30 * 24 * time.Hour),
		DER: []byte("certificate " + serial.String())}
}

// enrol allows test TPM i and creates its device; it returns the device as
// the store should hold it.
func enrol(t testing.TB, s store.Store, i int, enrolled time.Time) (store.Device, store.Cert) {
	t.Helper()
	allow(t, s, i)
	d, c := newDevice(t, s, i, enrolled)
	if err := s.CreateDevice(ctx, d, c); err != nil {
		t.Fatalf("CreateDevice(%s) error %v", d.ID, err)
	}
	return stored(d, c), storedCert(c)
}

// stored is d as CreateDevice(d, first) should store it.
func stored(d store.Device, first store.Cert) store.Device {
	d.EnrolledAt = norm(d.EnrolledAt)
	d.StateChangedAt, d.LastSeen = d.EnrolledAt, d.EnrolledAt
	d.CurrentCertSerial, d.CertNotAfter = first.Serial, norm(first.NotAfter)
	return d
}

// storedCert is c as a store should hold it.
func storedCert(c store.Cert) store.Cert {
	c.NotBefore, c.NotAfter = norm(c.NotBefore), norm(c.NotAfter)
	if c.RevokedAt != nil {
		r := norm(*c.RevokedAt)
		c.RevokedAt = &r
	}
	if len(c.DER) == 0 {
		c.DER = nil
	}
	return c
}

// revoked is c revoked at when for reason, as stored.
func revoked(c store.Cert, when time.Time, reason store.RevocationReason) store.Cert {
	c = storedCert(c)
	r := norm(when)
	c.RevokedAt, c.Reason = &r, reason
	return c
}

// report is a valid report received at when, told apart by n.
func report(n int, when time.Time) store.Report {
	return store.Report{
		ReceivedAt: when,
		Firmware:   store.FirmwareVersion{Version: fmt.Sprintf("1.%d.0", n), SecurityVersion: 7},
		Slots: []store.SlotReport{
			{Name: "A", Version: fmt.Sprintf("1.%d.0", n), SecurityVersion: 7, Booted: true, Good: true},
			{Name: "B", Version: "1.0.0", SecurityVersion: 6},
		},
		Boot:         store.BootState{Slot: "A", AttemptsLeft: 3, MarkedGood: true},
		CertNotAfter: when.Add(20 * 24 * time.Hour),
		Lockdown:     store.LockdownResult{OK: n%2 == 0, Findings: []string{"port 5060/udp open"}},
		Counters:     map[string]uint64{"tls_handshake_failures": uint64(n), "sip_auth_failures": 1 << 53},
		Uptime:       time.Duration(n) * time.Hour,
		Signed:       fmt.Appendf(nil, `{"signed report":%d}`, n),
	}
}

// storedReport is r as a store should hold it.
func storedReport(r store.Report) store.Report {
	r.ReceivedAt, r.CertNotAfter = norm(r.ReceivedAt), norm(r.CertNotAfter)
	if len(r.Slots) == 0 {
		r.Slots = nil
	}
	if len(r.Lockdown.Findings) == 0 {
		r.Lockdown.Findings = nil
	}
	if len(r.Counters) == 0 {
		r.Counters = nil
	}
	return r
}

// wantErr fails t unless err wraps want.
func wantErr(t testing.TB, call string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s error = %v, want %v", call, err, want)
	}
}

// noErr fails t on err.
func noErr(t testing.TB, call string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s error %v", call, err)
	}
}

// equal fails t unless got and want are deeply equal.
func equal[T any](t *testing.T, call string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %+v, want %+v", call, got, want)
	}
}

// snapshot is everything a store shows through its listings, to check that
// a refused call changed nothing.
type snapshot struct {
	Allow    []store.AllowEntry
	Devices  []store.Device
	Certs    map[store.DeviceID][]store.Cert
	Reports  map[store.DeviceID][]store.Report
	Revoked  []store.Cert
	Settings map[store.SettingKey]string
}

// snapshotKeys are the settings a snapshot reads.
var snapshotKeys = []store.SettingKey{store.SettingMinSecurityVersion, "display.name", "x"}

func snap(t *testing.T, s store.Store) snapshot {
	t.Helper()
	sn := snapshot{Certs: map[store.DeviceID][]store.Cert{}, Reports: map[store.DeviceID][]store.Report{},
		Settings: map[store.SettingKey]string{}}
	for p := (store.PageRequest{Limit: 7}); ; {
		page, err := s.ListAllowed(ctx, p)
		noErr(t, "ListAllowed", err)
		sn.Allow = append(sn.Allow, page.Items...)
		if p.After = page.Next; p.After == "" {
			break
		}
	}
	for p := (store.PageRequest{Limit: 7}); ; {
		page, err := s.ListDevices(ctx, p)
		noErr(t, "ListDevices", err)
		sn.Devices = append(sn.Devices, page.Items...)
		if p.After = page.Next; p.After == "" {
			break
		}
	}
	for _, d := range sn.Devices {
		certs, err := s.ListDeviceCerts(ctx, d.ID, store.MaxPageSize)
		noErr(t, "ListDeviceCerts", err)
		sn.Certs[d.ID] = certs
		reps, err := s.ReportHistory(ctx, d.ID, store.MaxReportHistory)
		noErr(t, "ReportHistory", err)
		sn.Reports[d.ID] = reps
	}
	for p := (store.PageRequest{Limit: 7}); ; {
		page, err := s.ListRevoked(ctx, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), p)
		noErr(t, "ListRevoked", err)
		sn.Revoked = append(sn.Revoked, page.Items...)
		if p.After = page.Next; p.After == "" {
			break
		}
	}
	for _, k := range snapshotKeys {
		v, err := s.Setting(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		noErr(t, "Setting", err)
		sn.Settings[k] = v
	}
	return sn
}

// unchanged fails t when s no longer matches before.
func unchanged(t *testing.T, s store.Store, before snapshot, after string) {
	t.Helper()
	if got := snap(t, s); !reflect.DeepEqual(got, before) {
		t.Fatalf("store changed after %s:\n got %+v\nwant %+v", after, got, before)
	}
}
