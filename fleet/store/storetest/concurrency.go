package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// Concurrency tests run on replicas: with pgstore, separate connection
// pools on one database, as separate hpfleet processes would be. A start
// channel releases all goroutines together so they race for real.

const racers = 8

// testConcurrentConsume: of racing consumers of one challenge, on any
// replica, exactly one gets it. This is the replay protection of
// enrolment.
func testConcurrentConsume(t *testing.T, b Backend) {
	s := open(t, b)
	handles := replicas(t, b, s, 2)
	allow(t, s, 0)
	for round := range 20 {
		c := challenge(t, 0, t0)
		noErr(t, "PutChallenge", s.PutChallenge(ctx, c))
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
			errs []error
		)
		start := make(chan struct{})
		for g := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := handles[g%len(handles)].ConsumeChallenge(ctx, c.ID, at(time.Second))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && got.ID == c.ID:
					wins++
				case errors.Is(err, store.ErrNotFound):
				default:
					errs = append(errs, fmt.Errorf("got %s, %v", got.ID, err))
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 || wins != 1 {
			t.Fatalf("round %d: %d racing ConsumeChallenge calls: %d succeeded, want 1; unexpected: %v", round, racers, wins, errs)
		}
	}
}

// testConcurrentSequences: certificate serials and CRL numbers drawn on
// racing replicas never repeat, and each caller sees them increase.
func testConcurrentSequences(t *testing.T, b Backend) {
	s := open(t, b)
	handles := replicas(t, b, s, 2)
	const each = 40
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		serials = map[store.CertSerial]bool{}
		seqs    = map[uint64]bool{}
		crls    = map[uint64]bool{}
		errs    []error
	)
	start := make(chan struct{})
	for g := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := handles[g%len(handles)]
			<-start
			var lastSeq, lastCRL uint64
			for range each {
				serial, err := h.NextCertSerial(ctx)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				n, err := h.NextCRLNumber(ctx)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case serials[serial] || seqs[seqOf(serial)] || crls[n]:
					errs = append(errs, fmt.Errorf("repeated: serial %s (seen %v) or CRL number %d (seen %v)", serial, serials[serial], n, crls[n]))
				case seqOf(serial) <= lastSeq || n <= lastCRL:
					errs = append(errs, fmt.Errorf("went back: serial sequence %d after %d, CRL number %d after %d", seqOf(serial), lastSeq, n, lastCRL))
				}
				serials[serial], seqs[seqOf(serial)], crls[n] = true, true, true
				mu.Unlock()
				lastSeq, lastCRL = seqOf(serial), n
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("racing NextCertSerial/NextCRLNumber: %v", errors.Join(errs...))
	}
	if len(serials) != racers*each || len(crls) != racers*each {
		t.Fatalf("got %d serials and %d CRL numbers, want %d distinct of each", len(serials), len(crls), racers*each)
	}
}

// testConcurrentRenewRevoke races renewals on one replica against the
// device's revocation on another: whatever the interleaving, afterwards
// the device is revoked and no certificate of it is left unrevoked.
func testConcurrentRenewRevoke(t *testing.T, b Backend) {
	s := open(t, b)
	handles := replicas(t, b, s, 2)
	for round := range 10 {
		d, _ := enrol(t, s, round, t0)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			errs    []error
			renewed int
		)
		start := make(chan struct{})
		certs := make([]store.Cert, store.MaxLiveCertsPerDevice-1)
		for i := range certs {
			certs[i] = newCert(t, s, d.ID, at(time.Duration(i+1)*time.Hour))
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			for _, c := range certs {
				err := handles[0].AddCert(ctx, c)
				mu.Lock()
				switch {
				case err == nil:
					renewed++
				case !errors.Is(err, store.ErrState):
					errs = append(errs, fmt.Errorf("AddCert: %w", err))
				}
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			if err := handles[1].SetDeviceState(ctx, d.ID, store.StateRevoked, store.ReasonKeyCompromise, at(time.Hour)); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("SetDeviceState: %w", err))
				mu.Unlock()
			}
		}()
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: %v", round, errors.Join(errs...))
		}
		got, err := s.ListDeviceCerts(ctx, d.ID, 10)
		noErr(t, "ListDeviceCerts", err)
		if len(got) != 1+renewed {
			t.Fatalf("round %d: %d certificates stored, want 1 + %d renewed", round, len(got), renewed)
		}
		for _, c := range got {
			if c.RevokedAt == nil {
				t.Fatalf("round %d: certificate %s (renewals that succeeded: %d) outlived the revocation of %s", round, c.Serial, renewed, d.ID)
			}
		}
		dev, err := s.GetDevice(ctx, d.ID)
		noErr(t, "GetDevice", err)
		equal(t, "GetDevice.State", dev.State, store.StateRevoked)
	}
}

// testConcurrentCreateSameTPM: two replicas enrolling the same TPM at once
// (a phone retrying against two servers) create one device.
func testConcurrentCreateSameTPM(t *testing.T, b Backend) {
	s := open(t, b)
	handles := replicas(t, b, s, 2)
	for round := range 10 {
		allow(t, s, round)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
			errs []error
		)
		start := make(chan struct{})
		for g := range 4 {
			d, c := newDevice(t, s, round, t0)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := handles[g%len(handles)].CreateDevice(ctx, d, c)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, store.ErrExists):
					errs = append(errs, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 || wins != 1 {
			t.Fatalf("round %d: 4 racing CreateDevice of one TPM: %d succeeded, want 1; unexpected: %v", round, wins, errors.Join(errs...))
		}
	}
	page, err := s.ListDevices(ctx, store.PageRequest{Limit: 100})
	noErr(t, "ListDevices", err)
	equal(t, "devices after racing enrolments", len(page.Items), 10)
}
