package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// debugPCR is PCR 16, the PC Client debug PCR: extendable and resettable
// from locality 0, so tests may change it without touching boot PCRs.
const debugPCR = 16

func openSWTPM(t testing.TB, sw *test.SWTPM) *TPM {
	t.Helper()
	tp, err := Open(sw.Spec)
	if err != nil {
		t.Fatalf("Open(%q) = %v", sw.Spec, err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return tp
}

func startTPM(t testing.TB, opts ...test.SWTPMOption) (*test.SWTPM, *TPM) {
	t.Helper()
	sw := test.StartSWTPM(t, opts...)
	return sw, openSWTPM(t, sw)
}

func TestOpenSpec(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr bool
	}{
		{"swtpm:unix:/run/swtpm.sock", false},
		{"swtpm:tcp:127.0.0.1:2321", false},
		{"swtpm:tcp:[::1]:2321", false},
		{"swtpm:unix:", true},
		{"swtpm:tcp:localhost", true},
		{"software:/etc/kek", true},
		{"tpmrm0", true},
		{"", true},
		{"/nonexistent/tpmrm0", true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			tp, err := Open(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open(%q) error = %v, want error %t", tt.spec, err, tt.wantErr)
			}
			if tp != nil {
				if err := tp.Close(); err != nil {
					t.Fatalf("Close() = %v", err)
				}
			}
		})
	}
}

func TestSealUnseal(t *testing.T) {
	_, tp := startTPM(t)
	ctr, err := tp.DefineCounter(0x01800200)
	if err != nil {
		t.Fatalf("DefineCounter = %v", err)
	}
	if err := ctr.Increment(); err != nil {
		t.Fatalf("Increment = %v", err)
	}
	v, err := ctr.Read()
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	tests := []struct {
		name   string
		policy Policy
	}{
		{"no policy", Policy{}},
		{"pcr", Policy{PCRs: []int{debugPCR, 7}}},
		{"counter", Policy{Counter: ctr, CounterValue: v}},
		{"pcr and counter", Policy{PCRs: []int{debugPCR}, Counter: ctr, CounterValue: v}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := []byte("kek for " + tt.name + " 0123456789abcdef")
			blob, err := tp.Seal(secret, tt.policy)
			if err != nil {
				t.Fatalf("Seal = %v", err)
			}
			got, err := tp.Unseal(blob, tt.policy)
			if err != nil {
				t.Fatalf("Unseal = %v", err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("Unseal = %q, want %q", got, secret)
			}
		})
	}
}

func TestSealRejectsSize(t *testing.T) {
	_, tp := startTPM(t)
	for _, n := range []int{0, maxSealed + 1} {
		if _, err := tp.Seal(make([]byte, n), Policy{}); err == nil {
			t.Fatalf("Seal(%d bytes) = nil error, want an error", n)
		}
	}
}

func TestUnsealRefused(t *testing.T) {
	sw, tp := startTPM(t)
	ctr, err := tp.DefineCounter(0x01800201)
	if err != nil {
		t.Fatalf("DefineCounter = %v", err)
	}
	if err := ctr.Increment(); err != nil {
		t.Fatalf("Increment = %v", err)
	}
	gen, err := ctr.Read()
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	policy := Policy{PCRs: []int{debugPCR}, Counter: ctr, CounterValue: gen}
	blob, err := tp.Seal([]byte("sealed to pcr 16 and the counter"), policy)
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}

	t.Run("pcr extended", func(t *testing.T) {
		if err := tp.ExtendPCR(debugPCR, sha256.New().Sum(nil)); err != nil {
			t.Fatalf("ExtendPCR = %v", err)
		}
		if _, err := tp.Unseal(blob, policy); !errors.Is(err, ErrPolicy) {
			t.Fatalf("Unseal after PCR extend = %v, want ErrPolicy", err)
		}
		// A power cycle resets PCR 16; the blob opens again.
		sw.Restart(t)
		if _, err := tp.Unseal(blob, policy); err != nil {
			t.Fatalf("Unseal after restart = %v, want success", err)
		}
	})
	t.Run("counter incremented", func(t *testing.T) {
		if err := ctr.Increment(); err != nil {
			t.Fatalf("Increment = %v", err)
		}
		if _, err := tp.Unseal(blob, policy); !errors.Is(err, ErrPolicy) {
			t.Fatalf("Unseal after counter increment = %v, want ErrPolicy", err)
		}
	})
}

func TestUnsealBadBlob(t *testing.T) {
	_, tp := startTPM(t)
	blob, err := tp.Seal([]byte("the secret"), Policy{})
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name string
		blob Blob
	}{
		{"private first byte", Blob{blob.Public, flip(blob.Private, 0)}},
		{"private middle", Blob{blob.Public, flip(blob.Private, len(blob.Private)/2)}},
		{"private last byte", Blob{blob.Public, flip(blob.Private, len(blob.Private)-1)}},
		{"public attributes", Blob{flip(blob.Public, 7), blob.Private}},
		{"public last byte", Blob{flip(blob.Public, len(blob.Public)-1), blob.Private}},
		{"private truncated", Blob{blob.Public, blob.Private[:len(blob.Private)-4]}},
		{"empty", Blob{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tp.Unseal(tt.blob, Policy{}); err == nil {
				t.Fatalf("Unseal(%s) = nil error, want an error", tt.name)
			}
		})
	}
	// The good blob still opens: nothing above disturbed the TPM.
	if _, err := tp.Unseal(blob, Policy{}); err != nil {
		t.Fatalf("Unseal(good) = %v", err)
	}
}

func TestOtherTPM(t *testing.T) {
	_, a := startTPM(t)
	_, b := startTPM(t)
	blob, err := a.Seal([]byte("only for TPM a"), Policy{})
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	if _, err := b.Unseal(blob, Policy{}); !errors.Is(err, ErrBadBlob) {
		t.Fatalf("Unseal on another TPM = %v, want ErrBadBlob", err)
	}
	na, err := a.SRKName()
	if err != nil {
		t.Fatalf("SRKName = %v", err)
	}
	nb, err := b.SRKName()
	if err != nil {
		t.Fatalf("SRKName = %v", err)
	}
	if bytes.Equal(na, nb) {
		t.Fatalf("SRKName of two fresh TPMs = %x both, want different", na)
	}
}

func TestSRKNameStable(t *testing.T) {
	sw, tp := startTPM(t)
	before, err := tp.SRKName()
	if err != nil {
		t.Fatalf("SRKName = %v", err)
	}
	sw.Restart(t)
	again := openSWTPM(t, sw)
	after, err := again.SRKName()
	if err != nil {
		t.Fatalf("SRKName after restart = %v", err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("SRKName after restart = %x, want %x", after, before)
	}
}

func TestCounter(t *testing.T) {
	sw, tp := startTPM(t)
	const idx = 0x01800202
	if _, err := tp.OpenCounter(idx); !errors.Is(err, ErrNoCounter) {
		t.Fatalf("OpenCounter(undefined) = %v, want ErrNoCounter", err)
	}
	c, err := tp.DefineCounter(idx)
	if err != nil {
		t.Fatalf("DefineCounter = %v", err)
	}
	read := func(want uint64) {
		t.Helper()
		got, err := c.Read()
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if got != want {
			t.Fatalf("Read = %d, want %d", got, want)
		}
	}
	read(0)
	if err := c.Increment(); err != nil {
		t.Fatalf("Increment = %v", err)
	}
	read(1)
	if err := c.AdvanceTo(5); err != nil {
		t.Fatalf("AdvanceTo(5) = %v", err)
	}
	read(5)
	if err := c.AdvanceTo(3); err != nil {
		t.Fatalf("AdvanceTo(3) = %v", err)
	}
	read(5)
	if err := c.AdvanceTo(5 + maxAdvance + 1); err == nil {
		t.Fatalf("AdvanceTo(%d) = nil error, want refusal", 5+maxAdvance+1)
	}
	read(5)
	// Defining again finds the same counter.
	if c2, err := tp.DefineCounter(idx); err != nil || c2.Index() != idx {
		t.Fatalf("DefineCounter(existing) = %v, %v", c2, err)
	}
	// NV survives a power cycle.
	sw.Restart(t)
	read(5)
	reopened, err := tp.OpenCounter(idx)
	if err != nil {
		t.Fatalf("OpenCounter after restart = %v", err)
	}
	if v, err := reopened.Read(); err != nil || v != 5 {
		t.Fatalf("Read after restart = %d, %v, want 5", v, err)
	}
}

func TestCounterBadIndex(t *testing.T) {
	_, tp := startTPM(t)
	for _, idx := range []uint32{0x81000001, 0x40000001, 0} {
		if _, err := tp.DefineCounter(idx); err == nil {
			t.Fatalf("DefineCounter(0x%08x) = nil error, want an error", idx)
		}
	}
}

func TestSigner(t *testing.T) {
	sw, tp := startTPM(t)
	blob, err := tp.CreateSigningKey()
	if err != nil {
		t.Fatalf("CreateSigningKey = %v", err)
	}
	info, err := SigningKeyInfo(blob)
	if err != nil {
		t.Fatalf("SigningKeyInfo = %v", err)
	}
	if !info.NonExportable {
		t.Fatalf("SigningKeyInfo.NonExportable = false, want true")
	}
	s, err := tp.LoadSigner(blob)
	if err != nil {
		t.Fatalf("LoadSigner = %v", err)
	}
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || !pub.Equal(info.Public) {
		t.Fatalf("Public() = %T %v, want the blob's key", s.Public(), s.Public())
	}
	verify := func(name string) {
		t.Helper()
		d := sha256.Sum256([]byte(name))
		sig, err := s.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign(%s) = %v", name, err)
		}
		if !ecdsa.VerifyASN1(pub, d[:], sig) {
			t.Fatalf("Sign(%s) made a signature that does not verify", name)
		}
	}
	verify("first")
	// After a power cycle the handle is stale; the signer reloads.
	sw.Restart(t)
	verify("after restart")

	d384 := sha512.Sum384([]byte("x"))
	for _, tt := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"sha384", d384[:], crypto.SHA384},
		{"short digest", d384[:20], crypto.SHA256},
		{"nil opts", d384[:32], nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Sign(nil, tt.digest, tt.opts); err == nil {
				t.Fatalf("Sign(%s) = nil error, want refusal", tt.name)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	d := sha256.Sum256([]byte("closed"))
	if _, err := s.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, errClosed) {
		t.Fatalf("Sign after Close = %v, want errClosed", err)
	}
}

func TestSignerOtherTPM(t *testing.T) {
	_, a := startTPM(t)
	_, b := startTPM(t)
	blob, err := a.CreateSigningKey()
	if err != nil {
		t.Fatalf("CreateSigningKey = %v", err)
	}
	if _, err := b.LoadSigner(blob); !errors.Is(err, ErrBadBlob) {
		t.Fatalf("LoadSigner on another TPM = %v, want ErrBadBlob", err)
	}
}

func TestPCRValues(t *testing.T) {
	_, tp := startTPM(t)
	all := make([]int, NumPCRs)
	for i := range all {
		all[i] = i
	}
	vals, err := tp.PCRValues(all)
	if err != nil {
		t.Fatalf("PCRValues(0..23) = %v", err)
	}
	if len(vals) != NumPCRs {
		t.Fatalf("PCRValues(0..23) returned %d values, want %d", len(vals), NumPCRs)
	}
	before := bytes.Clone(vals[debugPCR])
	ext := sha256.Sum256([]byte("event"))
	if err := tp.ExtendPCR(debugPCR, ext[:]); err != nil {
		t.Fatalf("ExtendPCR = %v", err)
	}
	after, err := tp.PCRValues([]int{debugPCR})
	if err != nil {
		t.Fatalf("PCRValues = %v", err)
	}
	want := sha256.Sum256(append(before, ext[:]...))
	if !bytes.Equal(after[0], want[:]) {
		t.Fatalf("PCR %d after extend = %x, want %x", debugPCR, after[0], want)
	}
	for _, bad := range [][]int{{-1}, {NumPCRs}} {
		if _, err := tp.PCRValues(bad); err == nil {
			t.Fatalf("PCRValues(%v) = nil error, want an error", bad)
		}
	}
}

// TestOpenTCP reaches swtpm over its TCP command channel.
func TestOpenTCP(t *testing.T) {
	_, tp := startTPM(t, test.SWTPMTCP())
	blob, err := tp.Seal([]byte("over tcp"), Policy{PCRs: []int{debugPCR}})
	if err != nil {
		t.Fatalf("Seal over TCP = %v", err)
	}
	got, err := tp.Unseal(blob, Policy{PCRs: []int{debugPCR}})
	if err != nil || string(got) != "over tcp" {
		t.Fatalf("Unseal over TCP = %q, %v", got, err)
	}
}

// tap records every command and response that crosses the transport: the
// bus a probe would see.
type tap struct {
	inner interface {
		Send([]byte) ([]byte, error)
		Close() error
	}
	mu      sync.Mutex
	traffic [][]byte
}

func (tp *tap) Send(cmd []byte) ([]byte, error) {
	rsp, err := tp.inner.Send(cmd)
	tp.mu.Lock()
	tp.traffic = append(tp.traffic, bytes.Clone(cmd), bytes.Clone(rsp))
	tp.mu.Unlock()
	return rsp, err
}

func (tp *tap) Close() error { return tp.inner.Close() }

// TestSecretNeverOnTheBus checks the salted, encrypted sessions: a secret
// sealed and unsealed never appears in any command or response.
func TestSecretNeverOnTheBus(t *testing.T) {
	sw := test.StartSWTPM(t)
	inner, err := Open(sw.Spec)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	bus := &tap{inner: inner.tr}
	tp := &TPM{spec: sw.Spec, tr: bus, loaded: map[*Signer]struct{}{}}
	t.Cleanup(func() { tp.Close() })
	ctr, err := tp.DefineCounter(0x01800203)
	if err != nil {
		t.Fatalf("DefineCounter = %v", err)
	}
	if err := ctr.Increment(); err != nil {
		t.Fatalf("Increment = %v", err)
	}
	for i, policy := range []Policy{{}, {PCRs: []int{debugPCR}, Counter: ctr, CounterValue: 1}} {
		secret := []byte(fmt.Sprintf("NEVER-ON-THE-BUS-%d-%x", i, sha256.Sum256([]byte{byte(i)})))
		blob, err := tp.Seal(secret, policy)
		if err != nil {
			t.Fatalf("Seal = %v", err)
		}
		got, err := tp.Unseal(blob, policy)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("Unseal = %q, %v", got, err)
		}
		bus.mu.Lock()
		for j, msg := range bus.traffic {
			if bytes.Contains(msg, secret[:16]) {
				t.Errorf("policy %d: message %d on the bus holds the secret in clear", i, j)
			}
		}
		n := len(bus.traffic)
		bus.mu.Unlock()
		if n == 0 {
			t.Fatalf("tap saw no traffic")
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	_, tp := startTPM(t)
	blob, err := tp.CreateSigningKey()
	if err != nil {
		t.Fatalf("CreateSigningKey = %v", err)
	}
	s, err := tp.LoadSigner(blob)
	if err != nil {
		t.Fatalf("LoadSigner = %v", err)
	}
	sealed, err := tp.Seal([]byte("shared"), Policy{PCRs: []int{debugPCR}})
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				d := sha256.Sum256([]byte{byte(g), byte(i)})
				sig, err := s.Sign(nil, d[:], crypto.SHA256)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
					errs <- fmt.Errorf("goroutine %d: bad signature", g)
					return
				}
				if got, err := tp.Unseal(sealed, Policy{PCRs: []int{debugPCR}}); err != nil || string(got) != "shared" {
					errs <- fmt.Errorf("goroutine %d: Unseal = %q, %v", g, got, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent use: %v", err)
	}
}

func TestClosed(t *testing.T) {
	_, tp := startTPM(t)
	if err := tp.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, err := tp.SRKName(); !errors.Is(err, errClosed) {
		t.Fatalf("SRKName after Close = %v, want errClosed", err)
	}
}
