package credstore

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestNoSecretOnDisk is issue item 10: after a store has been used (values
// set, replaced and deleted, an identity made and used), no form of any
// test secret is in any file of the state directory or the TPM's state, nor
// in the log.
func TestNoSecretOnDisk(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			log, sink := newLog()
			s := e.open(t, k.prot(e, t), WithLogger(log))
			var secrets [][]byte
			for i := 0; i < 6; i++ {
				v := []byte(fmt.Sprintf("TestSecret-%d-%016x", i, rand.Uint64()))
				secrets = append(secrets, v)
				if err := s.Put(fmt.Sprintf("sip/user%d", i%3), v); err != nil {
					t.Fatalf("Put = %v", err)
				}
			}
			if err := s.Delete("sip/user2"); err != nil {
				t.Fatalf("Delete = %v", err)
			}
			enrol(t, s, "phone-scan")
			if _, err := s.List(); err != nil {
				t.Fatalf("List = %v", err)
			}
			for i := 0; i < 2; i++ {
				if _, err := s.Get(fmt.Sprintf("sip/user%d", i)); err != nil {
					t.Fatalf("Get = %v", err)
				}
			}
			s.Close()
			e.closeDB(t)

			dirs := []string{e.dir}
			if e.sw != nil {
				dirs = append(dirs, e.sw.StateDir)
			}
			scanned := 0
			for _, dir := range dirs {
				filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
					if err != nil || !d.Type().IsRegular() {
						return err
					}
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("read %s: %v", path, err)
					}
					scanned++
					for _, sec := range secrets {
						for _, form := range secretForms(sec) {
							if bytes.Contains(b, form) {
								t.Errorf("%s holds secret %q (as %q)", path, sec, form)
							}
						}
					}
					return nil
				})
			}
			if scanned < 2 {
				t.Fatalf("scanned %d files, want the state file and more", scanned)
			}
			for _, sec := range secrets {
				if bytes.Contains([]byte(sink.String()), sec) {
					t.Errorf("log holds secret %q", sec)
				}
			}
		})
	}
}

// secretForms are the encodings a secret could leak in.
func secretForms(s []byte) [][]byte {
	return [][]byte{
		s,
		[]byte(hex.EncodeToString(s)),
		[]byte(base64.StdEncoding.EncodeToString(s)),
		[]byte(base64.RawURLEncoding.EncodeToString(s)),
	}
}

// TestConcurrent is the first half of issue item 12: Gets and Puts from
// several goroutines at once (and signatures with the identity key)
// leave every committed value readable.
func TestConcurrent(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			s := e.open(t, k.prot(e, t))
			enrol(t, s, "phone-concurrent")
			const goroutines, rounds = 8, 20
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					signer, err := s.Signer()
					if err != nil {
						errs <- err
						return
					}
					for i := 0; i < rounds; i++ {
						name := fmt.Sprintf("g%d/v", g)
						want := fmt.Sprintf("value-%d-%d", g, i)
						if err := s.Put(name, []byte(want)); err != nil {
							errs <- err
							return
						}
						if err := s.Put("shared", []byte(want)); err != nil {
							errs <- err
							return
						}
						got, err := s.Get(name)
						if err != nil || string(got) != want {
							errs <- fmt.Errorf("Get(%s) = %q, %v, want %q", name, []byte(got), err, want)
							return
						}
						if _, err := s.Get("shared"); err != nil {
							errs <- fmt.Errorf("Get(shared) = %v", err)
							return
						}
						if i%5 == 0 {
							d := sha256.Sum256([]byte(want))
							sig, err := signer.Sign(nil, d[:], crypto.SHA256)
							if err != nil || !ecdsa.VerifyASN1(signer.Public().(*ecdsa.PublicKey), d[:], sig) {
								errs <- fmt.Errorf("Sign = %v", err)
								return
							}
						}
					}
				}(g)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("concurrent use: %v", err)
			}
			for g := 0; g < goroutines; g++ {
				wantGet(t, s, fmt.Sprintf("g%d/v", g), fmt.Sprintf("value-%d-%d", g, rounds-1))
			}
			list, err := s.List()
			if err != nil || len(list) != goroutines+1 {
				t.Fatalf("List = %d entries, %v, want %d", len(list), err, goroutines+1)
			}
			for _, in := range list {
				if in.Name != "shared" && in.Version != rounds {
					t.Fatalf("List entry %s version %d, want %d", in.Name, in.Version, rounds)
				}
			}
		})
	}
}

// TestKilledMidPut is the second half of issue item 12: a process killed
// (SIGKILL) while it Puts leaves a store that opens and holds every value
// whose Put had returned.
func TestKilledMidPut(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			spec := "software:" + filepath.Join(e.dir, "kek")
			if e.sw != nil {
				spec = e.sw.Spec
			}
			p, err := openProtector(spec)
			if err != nil {
				t.Fatalf("OpenProtector = %v", err)
			}
			defer p.Close()
			s := e.open(t, p)
			mustPut(t, s, "sip/alice", "before-the-crash")
			s.Close()
			e.closeDB(t)

			acked := map[int]bool{}
			next := 0
			for round := 0; round < 3; round++ {
				got := runAndKill(t, e.dbPath, spec, next, 20+rand.IntN(40))
				for _, i := range got {
					acked[i] = true
					next = max(next, i+1)
				}
				if e.sw != nil {
					// swtpm has no resource manager: the killed child's
					// transient objects stay loaded until a TPM reset
					// (/dev/tpmrm0 flushes them when the process dies).
					e.sw.Restart(t)
				}
				s := e.open(t, p)
				wantGet(t, s, "sip/alice", "before-the-crash")
				for i := range acked {
					got, err := s.Get(fmt.Sprintf("crash/%d", i))
					if err != nil || !bytes.Equal(got, crashValue(i)) {
						t.Fatalf("round %d: Get(crash/%d) = %d bytes, %v, want the committed value", round, i, len(got), err)
					}
				}
				list, err := s.List()
				if err != nil {
					t.Fatalf("List = %v", err)
				}
				for _, in := range list {
					if in.Err != nil {
						t.Fatalf("round %d: List entry %s: %v", round, in.Name, in.Err)
					}
				}
				s.Close()
				e.closeDB(t)
			}
			if len(acked) < 60 {
				t.Fatalf("%d Puts acknowledged over 3 rounds, want at least 60", len(acked))
			}
		})
	}
}

// runAndKill starts the Put loop in a child, kills it with SIGKILL after
// it acknowledged n Puts (plus a random few microseconds, to land inside
// a Put), and returns the acknowledged indices.
func runAndKill(t *testing.T, dbPath, spec string, from, n int) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDBEnv+"="+dbPath, childSpecEnv+"="+spec, childFromEnv+"="+strconv.Itoa(from))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	var acked []int
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		acked = append(acked, i)
		if len(acked) == n && !killed {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill child %d: %v", cmd.Process.Pid, err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr: %s", err, stderr.String())
	}
	if len(acked) < n {
		t.Fatalf("child acknowledged %d Puts, want %d; stderr: %s", len(acked), n, stderr.String())
	}
	return acked
}

// TestWipe checks the factory reset: every value and the identity are gone,
// a copy of the state taken before the wipe can never be opened again
// (the KEK generation moved on), and NV counters are kept.
func TestWipe(t *testing.T) {
	e := newTPMEnv(t)
	rollback, err := e.tpm.DefineCounter(0x01800111)
	if err != nil {
		t.Fatalf("DefineCounter = %v", err)
	}
	if err := rollback.AdvanceTo(7); err != nil {
		t.Fatalf("AdvanceTo = %v", err)
	}
	s := e.open(t, e.tpmProtector(t))
	mustPut(t, s, "sip/alice", "wiped-secret")
	enrol(t, s, "phone-wipe")
	before, err := s.Status()
	if err != nil {
		t.Fatalf("Status = %v", err)
	}
	s.Close()
	e.closeDB(t)
	snapshot := e.clone(t) // what a thief copied before the reset

	s = e.open(t, e.tpmProtector(t))
	if err := s.Wipe(); err != nil {
		t.Fatalf("Wipe = %v", err)
	}
	if _, err := s.Get("sip/alice"); !errors.Is(err, errClosed) {
		t.Fatalf("Get after Wipe = %v, want errClosed", err)
	}
	e.closeDB(t)

	fresh := e.open(t, e.tpmProtector(t))
	if list, err := fresh.List(); err != nil || len(list) != 0 {
		t.Fatalf("List after Wipe = %v, %v, want empty", list, err)
	}
	if _, err := fresh.Identity(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Identity after Wipe = %v, want ErrNoIdentity", err)
	}
	after, _ := fresh.Status()
	if after.Generation != before.Generation+1 {
		t.Fatalf("generation after Wipe = %d, want %d", after.Generation, before.Generation+1)
	}
	if v, err := rollback.Read(); err != nil || v != 7 {
		t.Fatalf("anti-rollback counter after Wipe = %d, %v, want 7", v, err)
	}

	// The pre-wipe copy is dead on this TPM for good.
	_, err = Open(snapshot.openDB(t), snapshot.tpmProtector(t))
	if !errors.Is(err, ErrWiped) {
		t.Fatalf("Open(pre-wipe copy) = %v, want ErrWiped", err)
	}
	// Wipe works without a usable KEK, and finishes the job.
	if err := Wipe(snapshot.db, snapshot.tpmProtector(t)); err != nil {
		t.Fatalf("Wipe(pre-wipe copy) = %v", err)
	}
	s2, err := Open(snapshot.db, snapshot.tpmProtector(t))
	if err != nil {
		t.Fatalf("Open after second Wipe = %v", err)
	}
	s2.Close()
}

func TestWipeSoftware(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, e.softProtector(t))
	mustPut(t, s, "sip/alice", "soft-wiped")
	s.Close()
	e.closeDB(t)
	snapshot, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	s = e.open(t, e.softProtector(t))
	if err := s.Wipe(); err != nil {
		t.Fatalf("Wipe = %v", err)
	}
	e.closeDB(t)
	if _, err := os.Stat(filepath.Join(e.dir, "kek")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("KEK file after Wipe: %v, want gone", err)
	}
	if err := os.WriteFile(e.dbPath, snapshot, 0o600); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, err := Open(e.openDB(t), e.softProtector(t)); !errors.Is(err, ErrWrongProtector) {
		t.Fatalf("Open(pre-wipe copy) = %v, want ErrWrongProtector (KEK file gone)", err)
	}
}

// TestWipeRefusedStore wipes a store Open refuses because a bound PCR
// changed: a factory reset must not need the old KEK.
func TestWipeRefusedStore(t *testing.T) {
	e := newTPMEnv(t)
	s := e.open(t, e.tpmProtector(t, WithPCRs(debugPCR)))
	mustPut(t, s, "sip/alice", "x")
	s.Close()
	if err := e.tpm.ExtendPCR(debugPCR, make([]byte, 32)); err != nil {
		t.Fatalf("ExtendPCR = %v", err)
	}
	if _, err := Open(e.db, e.tpmProtector(t, WithPCRs(debugPCR))); !errors.Is(err, ErrPolicy) {
		t.Fatalf("Open = %v, want ErrPolicy", err)
	}
	if err := Wipe(e.db, e.tpmProtector(t)); err != nil {
		t.Fatalf("Wipe = %v", err)
	}
	s2 := e.open(t, e.tpmProtector(t, WithPCRs(debugPCR)))
	if list, err := s2.List(); err != nil || len(list) != 0 {
		t.Fatalf("List after Wipe = %v, %v, want empty", list, err)
	}
}

// TestTPMRestart checks that an open store survives a TPM reset (swtpm
// restart): the SRK and the identity key are reloaded.
func TestTPMRestart(t *testing.T) {
	e := newTPMEnv(t)
	s := e.open(t, e.tpmProtector(t))
	enrol(t, s, "phone-restart")
	cert, err := s.Identity()
	if err != nil {
		t.Fatalf("Identity = %v", err)
	}
	e.sw.Restart(t)
	d := sha256.Sum256([]byte("after reset"))
	sig, err := cert.PrivateKey.(crypto.Signer).Sign(nil, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(cert.Leaf.PublicKey.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("Sign after TPM reset = %v", err)
	}
}
