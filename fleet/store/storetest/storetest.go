package storetest

import (
	"context"
	"testing"

	"github.com/hardphone/hardphone/fleet/store"
)

// Backend is what Run needs from an implementation.
type Backend struct {
	// Open returns a new store on an empty database. Run closes it (or
	// hands it to Reopen or OpenTooNew, which do).
	Open func(t *testing.T) store.Store
	// Reopen closes s and opens the same database again, as a restarted
	// hpfleet would.
	Reopen func(t *testing.T, s store.Store) store.Store
	// Replica opens a second handle on s's database, as another hpfleet
	// replica would (its own connections, no state shared in the
	// process); Run closes it. Nil for a backend one process owns
	// (bbolt): the concurrency tests then share s between goroutines.
	Replica func(t *testing.T, s store.Store) store.Store
	// OpenTooNew closes s, marks its database one schema version newer
	// than this binary knows, opens it again and returns Open's error,
	// closing the store if Open wrongly succeeded.
	OpenTooNew func(t *testing.T, s store.Store) error
	// StoredReports counts the reports s holds for a device, looking
	// past the API (which never lists more than MaxReportHistory), to
	// check that PutReport deletes what falls off the history.
	StoredReports func(t *testing.T, s store.Store, id store.DeviceID) int
}

// Run runs the conformance suite against b as subtests of t.
func Run(t *testing.T, b Backend) {
	if b.Open == nil || b.Reopen == nil || b.OpenTooNew == nil || b.StoredReports == nil {
		t.Fatalf("storetest.Run: Backend needs Open, Reopen, OpenTooNew and StoredReports")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"AllowList", testAllowList},
		{"AllowListRefusals", testAllowListRefusals},
		{"Challenges", testChallenges},
		{"ChallengeRefusals", testChallengeRefusals},
		{"ChallengeLogValue", testChallengeLogValue},
		{"Devices", testDevices},
		{"DeviceRefusals", testDeviceRefusals},
		{"DeviceStates", testDeviceStates},
		{"RetireFreesEK", testRetireFreesEK},
		{"Certs", testCerts},
		{"CertRefusals", testCertRefusals},
		{"LiveCertBound", testLiveCertBound},
		{"ListRevoked", testListRevoked},
		{"Closed", testClosed},
		{"Reports", testReports},
		{"ReportHistoryBound", testReportHistoryBound},
		{"ReportRefusals", testReportRefusals},
		{"Settings", testSettings},
		{"SealingKeys", testSealingKeys},
		{"Assignments", testAssignments},
		{"Provisions", testProvisions},
		{"ConcurrentProvision", testConcurrentProvision},
		{"ConcurrentConsume", testConcurrentConsume},
		{"ConcurrentSequences", testConcurrentSequences},
		{"ConcurrentRenewRevoke", testConcurrentRenewRevoke},
		{"ConcurrentCreateSameTPM", testConcurrentCreateSameTPM},
		{"Events", testEvents},
		{"EventBound", testEventBound},
		{"EventRefusals", testEventRefusals},
		{"ConcurrentEvents", testConcurrentEvents},
		{"Observations", testObservations},
		{"ConcurrentObservations", testConcurrentObservations},
		{"Findings", testFindings},
		{"AnomalyState", testAnomalyState},
		{"AnomalyResponses", testAnomalyResponses},
		{"Lead", testLead},
		{"Persistence", testPersistence},
		{"SchemaTooNew", testSchemaTooNew},
		{"ContextCanceled", testContextCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

// open opens a fresh store closed at the end of the test.
func open(t *testing.T, b Backend) store.Store {
	t.Helper()
	s := b.Open(t)
	t.Cleanup(func() { closeQuietly(s) })
	return s
}

// closeQuietly closes a store that may already be closed (Reopen and
// OpenTooNew close theirs): the second Close's error is expected.
func closeQuietly(s store.Store) { _ = s.Close() }

// replicas returns n handles on s's database: s and n-1 replicas, or s n
// times for a single-process backend.
func replicas(t *testing.T, b Backend, s store.Store, n int) []store.Store {
	t.Helper()
	out := []store.Store{s}
	for len(out) < n {
		if b.Replica == nil {
			out = append(out, s)
			continue
		}
		r := b.Replica(t, s)
		t.Cleanup(func() { closeQuietly(r) })
		out = append(out, r)
	}
	return out
}

var ctx = context.Background()
