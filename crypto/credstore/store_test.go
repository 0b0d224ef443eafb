package credstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPutGetDeleteList(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			clock := time.Unix(1_700_000_000, 0)
			s := e.open(t, k.prot(e, t), WithClock(func() time.Time { return clock }))
			if got := s.Protection().String(); got != k.name {
				t.Fatalf("Protection() = %s, want %s", got, k.name)
			}
			mustPut(t, s, "sip/alice", "alice-pw")
			mustPut(t, s, "sip/bob", "bob-pw")
			clock = clock.Add(time.Hour)
			mustPut(t, s, "sip/alice", "alice-pw-2")
			wantGet(t, s, "sip/alice", "alice-pw-2")
			wantGet(t, s, "sip/bob", "bob-pw")

			list, err := s.List()
			if err != nil {
				t.Fatalf("List = %v", err)
			}
			if len(list) != 2 || list[0].Name != "sip/alice" || list[1].Name != "sip/bob" {
				t.Fatalf("List = %+v, want sip/alice, sip/bob", list)
			}
			a := list[0]
			if a.Version != 2 || a.Size != len("alice-pw-2") || a.Err != nil ||
				!a.Created.Equal(time.Unix(1_700_000_000, 0)) || !a.Updated.Equal(clock) {
				t.Fatalf("List()[0] = %+v, want version 2, size 10, created at the first Put, updated an hour later", a)
			}

			if err := s.Delete("sip/bob"); err != nil {
				t.Fatalf("Delete = %v", err)
			}
			if _, err := s.Get("sip/bob"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(deleted) = %v, want ErrNotFound", err)
			}
			if err := s.Delete("sip/bob"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Delete(deleted) = %v, want ErrNotFound", err)
			}
			st, err := s.Status()
			if err != nil || st.Credentials != 1 || st.Protection.Weaker() != (k.name == "software") {
				t.Fatalf("Status() = %+v, %v, want 1 credential, weaker=%t", st, err, k.name == "software")
			}

			// Reopen: the values persist.
			if err := s.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			if _, err := s.Get("sip/alice"); !errors.Is(err, errClosed) {
				t.Fatalf("Get after Close = %v, want errClosed", err)
			}
			e.closeDB(t)
			s2 := e.open(t, k.prot(e, t))
			wantGet(t, s2, "sip/alice", "alice-pw-2")
		})
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, e.softProtector(t))
	tests := []struct {
		name, key string
		value     []byte
	}{
		{"empty name", "", []byte("x")},
		{"long name", strings.Repeat("n", maxNameLen+1), []byte("x")},
		{"control char", "sip/\nalice", []byte("x")},
		{"not utf8", "sip/\xff", []byte("x")},
		{"empty value", "sip/alice", nil},
		{"huge value", "sip/alice", make([]byte, maxValueLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(tt.key, tt.value); err == nil {
				t.Fatalf("Put(%q, %d bytes) = nil error, want refusal", tt.key, len(tt.value))
			}
		})
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List after refused Puts = %v, %v, want empty", list, err)
	}
}

// TestWrongProtector is issue item 7: a store opened by another TPM, or the
// other kind of protector, or another KEK file, is refused with an error
// naming the cause, and the refusal changes nothing on disk.
func TestWrongProtector(t *testing.T) {
	tpmEnv := newTPMEnv(t)
	s := tpmEnv.open(t, tpmEnv.tpmProtector(t))
	mustPut(t, s, "sip/alice", "secret-of-alice")
	s.Close()
	tpmEnv.closeDB(t)
	other := openTPM(t, newTPMEnv(t).sw)

	softEnv := newEnv(t)
	ss := softEnv.open(t, softEnv.softProtector(t))
	mustPut(t, ss, "sip/bob", "secret-of-bob")
	ss.Close()
	softEnv.closeDB(t)
	otherKEK := filepath.Join(t.TempDir(), "other-kek")
	if err := os.WriteFile(otherKEK, []byte(kekFileHeader+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatalf("write other KEK: %v", err)
	}

	tests := []struct {
		name     string
		env      *env
		prot     func(t *testing.T) *Protector
		wantText string
	}{
		{"fresh TPM", tpmEnv, func(t *testing.T) *Protector {
			p, err := NewTPMProtector(other)
			if err != nil {
				t.Fatalf("NewTPMProtector = %v", err)
			}
			return p
		}, "different TPM"},
		{"software on a TPM store", tpmEnv, func(t *testing.T) *Protector { return softEnv.softProtector(t) }, "tpm-protected"},
		{"TPM on a software store", softEnv, func(t *testing.T) *Protector { return tpmEnv.tpmProtector(t) }, "software-protected"},
		{"another KEK file", softEnv, func(t *testing.T) *Protector {
			p, err := NewSoftwareProtector(otherKEK)
			if err != nil {
				t.Fatalf("NewSoftwareProtector = %v", err)
			}
			return p
		}, "KEK file does not belong"},
		{"missing KEK file", softEnv, func(t *testing.T) *Protector {
			p, err := NewSoftwareProtector(filepath.Join(t.TempDir(), "none"))
			if err != nil {
				t.Fatalf("NewSoftwareProtector = %v", err)
			}
			return p
		}, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := os.ReadFile(tt.env.dbPath)
			if err != nil {
				t.Fatalf("read db: %v", err)
			}
			db := tt.env.openDB(t)
			_, err = Open(db, tt.prot(t))
			tt.env.closeDB(t)
			if !errors.Is(err, ErrWrongProtector) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Open = %v, want ErrWrongProtector saying %q", err, tt.wantText)
			}
			after, err := os.ReadFile(tt.env.dbPath)
			if err != nil {
				t.Fatalf("read db: %v", err)
			}
			if string(before) != string(after) {
				t.Fatalf("refused Open changed the state file")
			}
		})
	}
	// The right protectors still open their stores.
	wantGet(t, tpmEnv.open(t, tpmEnv.tpmProtector(t)), "sip/alice", "secret-of-alice")
	wantGet(t, softEnv.open(t, softEnv.softProtector(t)), "sip/bob", "secret-of-bob")
}

// TestPCRPolicy is issue item 8: with the KEK bound to a PCR, extending it
// makes Get (and every other use of the KEK) fail with ErrPolicy naming the
// PCR, even on an already open store; a reboot (PCR reset) restores access.
func TestPCRPolicy(t *testing.T) {
	e := newTPMEnv(t)
	log, sink := newLog()
	s := e.open(t, e.tpmProtector(t, WithPCRs(debugPCR)), WithLogger(log))
	mustPut(t, s, "sip/alice", "pcr-bound-secret")
	wantGet(t, s, "sip/alice", "pcr-bound-secret")
	if err := s.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity = %v", err)
	}

	ext := make([]byte, 32)
	ext[0] = 1
	if err := e.tpm.ExtendPCR(debugPCR, ext); err != nil {
		t.Fatalf("ExtendPCR = %v", err)
	}
	checks := []struct {
		name string
		do   func() error
	}{
		{"Get", func() error { _, err := s.Get("sip/alice"); return err }},
		{"Put", func() error { return s.Put("sip/bob", []byte("x")) }},
		{"List", func() error { _, err := s.List(); return err }},
		{"Signer", func() error { _, err := s.Signer(); return err }},
		{"Open", func() error {
			s.Close()
			e.closeDB(t)
			_, err := Open(e.openDB(t), e.tpmProtector(t, WithPCRs(debugPCR)))
			return err
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "PCR [16]") {
				t.Fatalf("%s after PCR extend = %v, want ErrPolicy naming PCR [16]", c.name, err)
			}
		})
	}
	if strings.Contains(sink.String(), "pcr-bound-secret") {
		t.Fatalf("log holds the secret: %s", sink.String())
	}

	// Reboot: PCR 16 is reset, the store opens again.
	e.closeDB(t)
	e.sw.Restart(t)
	s2 := e.open(t, e.tpmProtector(t, WithPCRs(debugPCR)))
	wantGet(t, s2, "sip/alice", "pcr-bound-secret")
	if err := s2.Put("sip/bob", []byte("y")); err != nil {
		t.Fatalf("Put after reboot = %v", err)
	}
}

// TestPCRReseal checks that a changed PCR set in config reseals the same
// KEK at Open, and that the new binding holds.
func TestPCRReseal(t *testing.T) {
	e := newTPMEnv(t)
	s := e.open(t, e.tpmProtector(t))
	mustPut(t, s, "sip/alice", "resealed")
	s.Close()
	e.closeDB(t)

	log, sink := newLog()
	s2 := e.open(t, e.tpmProtector(t, WithPCRs(debugPCR, 7)), WithLogger(log))
	if st, err := s2.Status(); err != nil || len(st.PCRs) != 2 {
		t.Fatalf("Status after reseal = %+v, %v, want PCRs [7 16]", st, err)
	}
	if !strings.Contains(sink.String(), "KEK resealed") {
		t.Fatalf("reseal not logged: %s", sink.String())
	}
	wantGet(t, s2, "sip/alice", "resealed")
	s2.Close()
	e.closeDB(t)

	// Without WithPCRs the binding stays: omitting the option never
	// weakens a store.
	s3 := e.open(t, e.tpmProtector(t))
	if st, err := s3.Status(); err != nil || len(st.PCRs) != 2 {
		t.Fatalf("Status without WithPCRs = %+v, %v, want PCRs [7 16] kept", st, err)
	}
	if err := e.tpm.ExtendPCR(7, make([]byte, 32)); err != nil {
		t.Fatalf("ExtendPCR = %v", err)
	}
	if _, err := s3.Get("sip/alice"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("Get after extending newly bound PCR 7 = %v, want ErrPolicy", err)
	}
	s3.Close()
	e.closeDB(t)

	// WithPCRs() removes the binding, after a reboot makes the KEK
	// unsealable again.
	e.sw.Restart(t)
	s4 := e.open(t, e.tpmProtector(t, WithPCRs()))
	if st, err := s4.Status(); err != nil || len(st.PCRs) != 0 {
		t.Fatalf("Status with WithPCRs() = %+v, %v, want no PCRs", st, err)
	}
	if err := e.tpm.ExtendPCR(7, make([]byte, 32)); err != nil {
		t.Fatalf("ExtendPCR = %v", err)
	}
	wantGet(t, s4, "sip/alice", "resealed")
}

func TestSoftwareKEKFileMode(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, e.softProtector(t))
	mustPut(t, s, "sip/alice", "x")
	s.Close()
	e.closeDB(t)
	if err := os.Chmod(filepath.Join(e.dir, "kek"), 0o644); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if _, err := Open(e.openDB(t), e.softProtector(t)); err == nil || !strings.Contains(err.Error(), "want 0600") {
		t.Fatalf("Open with a 0644 KEK file = %v, want refusal", err)
	}
}

func TestSoftwareKEKFileExists(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.dir, "kek"), []byte("someone else's"), 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := Open(e.openDB(t), e.softProtector(t)); err == nil {
		t.Fatalf("Open of a new store over an existing KEK file = nil error, want refusal")
	}
}
