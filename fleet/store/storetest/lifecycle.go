package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// testPersistence fills every kind of record, reopens the database and
// finds it all, sequences continuing where they were.
func testPersistence(t *testing.T, b Backend) {
	s := b.Open(t)
	d, _ := enrol(t, s, 0, t0)
	gone, _ := enrol(t, s, 1, t0)
	allow(t, s, 2)
	renewal := newCert(t, s, d.ID, at(time.Hour))
	noErr(t, "AddCert", s.AddCert(ctx, renewal))
	noErr(t, "SetDeviceState", s.SetDeviceState(ctx, gone.ID, store.StateRetired, store.ReasonCessationOfOperation, at(time.Hour)))
	for n := 1; n <= 3; n++ {
		noErr(t, "PutReport", s.PutReport(ctx, d.ID, report(n, at(time.Duration(n)*time.Minute))))
	}
	noErr(t, "SetSetting", s.SetSetting(ctx, store.SettingMinSecurityVersion, "5"))
	c := challenge(t, 2, t0)
	noErr(t, "PutChallenge", s.PutChallenge(ctx, c))
	lastSerial, err := s.NextCertSerial(ctx)
	noErr(t, "NextCertSerial", err)
	lastCRL, err := s.NextCRLNumber(ctx)
	noErr(t, "NextCRLNumber", err)
	before := snap(t, s)

	s = b.Reopen(t, s)
	t.Cleanup(func() { closeQuietly(s) })
	unchanged(t, s, before, "reopen")
	got, err := s.ConsumeChallenge(ctx, c.ID, at(time.Second))
	noErr(t, "ConsumeChallenge(after reopen)", err)
	equal(t, "ConsumeChallenge(after reopen)", got, storedChallenge(c))
	serial, err := s.NextCertSerial(ctx)
	noErr(t, "NextCertSerial", err)
	if seqOf(serial) <= seqOf(lastSerial) {
		t.Fatalf("NextCertSerial after reopen = %s, want a sequence above %s's", serial, lastSerial)
	}
	n, err := s.NextCRLNumber(ctx)
	noErr(t, "NextCRLNumber", err)
	if n <= lastCRL {
		t.Fatalf("NextCRLNumber after reopen = %d, want above %d", n, lastCRL)
	}
	dev, err := s.GetDeviceByEK(ctx, d.EK)
	noErr(t, "GetDeviceByEK", err)
	equal(t, "GetDeviceByEK(after reopen).ID", dev.ID, d.ID)
	_, err = s.GetDeviceByEK(ctx, gone.EK)
	wantErr(t, "GetDeviceByEK(retired, after reopen)", err, store.ErrNotFound)
	// A second reopen of an up-to-date database migrates nothing and
	// changes nothing.
	s = b.Reopen(t, s)
	t.Cleanup(func() { closeQuietly(s) })
	unchanged(t, s, before, "second reopen")
}

// testSchemaTooNew: a database a newer hpfleet migrated is refused.
func testSchemaTooNew(t *testing.T, b Backend) {
	s := b.Open(t)
	allow(t, s, 0)
	err := b.OpenTooNew(t, s)
	wantErr(t, "Open(schema from the future)", err, store.ErrSchemaTooNew)
}

// testContextCanceled: a canceled context stops a call before it writes.
func testContextCanceled(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 0, t0)
	allow(t, s, 1)
	before := snap(t, s)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	calls := map[string]error{
		"ImportAllowList": func() error { _, err := s.ImportAllowList(cctx, []store.AllowEntry{allowEntry(5)}); return err }(),
		"RemoveAllowed":   s.RemoveAllowed(cctx, ek(1)),
		"PutChallenge":    s.PutChallenge(cctx, challenge(t, 1, t0)),
		"SetDeviceState":  s.SetDeviceState(cctx, d.ID, store.StateRevoked, store.ReasonUnspecified, t0),
		"PutReport":       s.PutReport(cctx, d.ID, report(1, t0)),
		"SetSetting":      s.SetSetting(cctx, "x", "1"),
		"GetDevice":       func() error { _, err := s.GetDevice(cctx, d.ID); return err }(),
	}
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s(canceled context) error = %v, want context.Canceled", name, err)
		}
	}
	unchanged(t, s, before, "calls with a canceled context")
}

// testClosed: calls after Close fail with an error, never a panic.
func testClosed(t *testing.T, b Backend) {
	s := b.Open(t)
	d, _ := enrol(t, s, 0, t0)
	noErr(t, "Close", s.Close())
	if _, err := s.GetDevice(ctx, d.ID); err == nil {
		t.Fatalf("GetDevice after Close = nil error")
	}
	if err := s.PutReport(ctx, d.ID, report(1, t0)); err == nil {
		t.Fatalf("PutReport after Close = nil error")
	}
	if _, err := s.NextCertSerial(ctx); err == nil {
		t.Fatalf("NextCertSerial after Close = nil error")
	}
}
