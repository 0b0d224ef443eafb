package server

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/boltaudit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/test"
)

// TestAuditDeviceRecords: an ingested batch of a phone's journal is one
// audit entry naming its kinds and worst event; a batch without events
// adds none; an anomaly finding is one entry and each response one more.
// The server has admin sessions and an audit log, on bbolt.
func TestAuditDeviceRecords(t *testing.T) {
	dir := initPKI(t)
	tmp := t.TempDir()
	st, err := boltstore.Open(filepath.Join(tmp, "data"))
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	as, err := boltauth.Open(filepath.Join(tmp, "adminauth"))
	if err != nil {
		t.Fatalf("boltauth.Open: %v", err)
	}
	t.Cleanup(func() { as.Close() })
	auth, err := adminauth.New(as)
	if err != nil {
		t.Fatalf("adminauth.New: %v", err)
	}
	aus, err := boltaudit.Open(filepath.Join(tmp, "audit"))
	if err != nil {
		t.Fatalf("boltaudit.Open: %v", err)
	}
	t.Cleanup(func() { aus.Close() })
	keyFile := filepath.Join(tmp, "audit.key")
	if _, err := audit.WriteKeyFiles(keyFile, keyFile+".pub", "fleet.test/audit"); err != nil {
		t.Fatalf("audit key: %v", err)
	}
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	l, err := audit.New(aus, key)
	if err != nil {
		t.Fatalf("audit.New: %v", err)
	}
	dca, err := ca.Load(filepath.Join(dir, ca.DeviceCACertFile), filepath.Join(dir, ca.DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("device CA: %v", err)
	}
	adminCA, err := ca.LoadCertificate(filepath.Join(dir, ca.AdminCACertFile))
	if err != nil {
		t.Fatalf("admin CA: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.ServerCertFile), filepath.Join(dir, ca.ServerKeyFile))
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(tmp, "mfg"))
	cfg := Config{Store: st, DeviceCA: dca, ManufacturerRoots: []*x509.Certificate{mfg.Cert}, AdminCAs: []*x509.Certificate{adminCA},
		Certificate: &cert, Audit: l}
	if _, err := New(cfg); err == nil {
		t.Fatalf("New(audit log without admin sessions) succeeded, want refused")
	}
	cfg.AdminAuth = auth
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	d := makeSoftDevice(t, st, dca, 1, time.Now(), time.Hour)

	// A batch: three warnings and one critical event, then a checkpoint.
	j := newJournal(t, d.key)
	j.events(3)
	j.add(eventlog.EncodeEvent(j.head, j.seq+1, time.Unix(1740000100, 0), &eventlog.Event{Severity: 2, Kind: "tpm.quote_failed"}))
	worstSeq := j.seq
	j.checkpoint()
	if _, err := srv.ingest(ctx, d.id, j.seg(1, j.seq), nil); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	// A batch without events (a checkpoint only): no entry.
	from := j.seq + 1
	j.checkpoint()
	if _, err := srv.ingest(ctx, d.id, j.seg(from, j.seq), nil); err != nil {
		t.Fatalf("ingest (checkpoint only): %v", err)
	}
	// A finding with an alert response (no sink: it fails, and says so).
	a := newAnomalyRunner(srv, AnomalyConfig{})
	a.handle(ctx, anomaly.Finding{ID: 7, Rule: "device.tamper", Severity: anomaly.SeverityCritical, Time: time.Now(),
		Devices: []string{string(d.id)}, Summary: "quote failures",
		Responses: []anomaly.Response{{Kind: anomaly.ResponseAlert, Rule: "device.tamper", Finding: 7}}})

	es, err := l.Entries(ctx, 0, 100)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	if len(es) != 3 {
		for _, e := range es {
			t.Logf("%v %v", e.Entry, e.Entry.Details)
		}
		t.Fatalf("audit log has %d entries, want 3 (one batch, one finding, one response)", len(es))
	}
	ev := es[0].Entry
	if ev.Action != audit.ActionDeviceEvent || ev.Actor != (audit.Actor{Kind: audit.ActorDevice, ID: string(d.id)}) || ev.Device == nil ||
		ev.Device.Kind != "tpm.quote_failed" || ev.Device.Severity != 2 || ev.Device.Seq != worstSeq ||
		ev.Details["kinds"] != "sip.dial_refused=3,tpm.quote_failed=1" || ev.Details["events"] != "4" || ev.Details["worst_severity"] != "2" {
		t.Errorf("batch entry = %+v %+v %v, want the device's 4 events, worst tpm.quote_failed (2) at seq %d", ev, ev.Device, ev.Details, worstSeq)
	}
	fe, re := es[1].Entry, es[2].Entry
	if fe.Action != audit.ActionAnomalyFinding || fe.Target != "finding 7" || fe.Details["rule"] != "device.tamper" || fe.Details["devices"] != string(d.id) {
		t.Errorf("finding entry = %+v %v", fe, fe.Details)
	}
	if re.Action != audit.ActionAnomalyResponse || re.Outcome != audit.OutcomeFailure || re.Details["kind"] != "alert" || re.Details["finding"] != "7" {
		t.Errorf("response entry = %+v %v, want a failed alert of finding 7", re, re.Details)
	}
}
