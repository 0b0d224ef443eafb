package eventlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// journal writes records the way agent/events does, for the tests.
type journal struct {
	t     testing.TB
	key   crypto.Signer
	chain [ChainIDLen]byte
	seq   uint64
	head  Hash
	tm    time.Time
	raws  [][]byte
}

func newJournal(t testing.TB, key crypto.Signer) *journal {
	j := &journal{t: t, key: key, tm: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	if _, err := rand.Read(j.chain[:]); err != nil {
		t.Fatalf("rand: %v", err)
	}
	j.signed(RecordGenesis, &Signed{})
	return j
}

func (j *journal) add(raw []byte) {
	j.raws = append(j.raws, raw)
	j.seq++
	j.head = Sum(raw)
	j.tm = j.tm.Add(time.Second)
}

func (j *journal) event(i int) {
	ev := &Event{Severity: 4, Kind: "sip.scanner", Account: "alice",
		Peer:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 5060),
		Detail: map[string]string{"user_agent": fmt.Sprintf("friendly-scanner %d", i), "method": "OPTIONS"}}
	j.add(EncodeEvent(j.head, j.seq+1, j.tm, ev))
}

func (j *journal) signed(t RecordType, s *Signed) {
	kid, err := KeyID(j.key.Public())
	if err != nil {
		j.t.Fatalf("KeyID = %v", err)
	}
	s.Chain, s.Key = j.chain, kid
	raw := EncodeSigned(j.head, t, j.seq+1, j.tm, s)
	sig, err := Sign(j.key, SignedMessage(raw, s))
	if err != nil {
		j.t.Fatalf("Sign = %v", err)
	}
	if raw, err = Seal(raw, sig); err != nil {
		j.t.Fatalf("Seal = %v", err)
	}
	j.add(raw)
}

func (j *journal) checkpoint() { j.signed(RecordCheckpoint, &Signed{Reason: ReasonCount}) }

func p256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	return k
}

func clone(raws [][]byte) [][]byte {
	out := make([][]byte, len(raws))
	for i, r := range raws {
		out[i] = append([]byte(nil), r...)
	}
	return out
}

// TestCheckSegment: a run of a journal's records ending in a checkpoint
// is proved; every way of breaking it is refused with the sentinel that
// says what.
func TestCheckSegment(t *testing.T) {
	key := p256(t)
	j := newJournal(t, key)
	for i := 0; i < 5; i++ {
		j.event(i)
	}
	j.checkpoint()
	for i := 5; i < 8; i++ {
		j.event(i)
	}
	j.checkpoint() // seq 11
	all := j.raws
	other := newJournal(t, key)
	other.event(0)
	other.checkpoint()

	tests := []struct {
		name string
		raws func() [][]byte
		pub  crypto.PublicKey
		want error
	}{
		{"whole journal", func() [][]byte { return clone(all) }, key.Public(), nil},
		{"a run inside it", func() [][]byte { return clone(all[3:11]) }, key.Public(), nil},
		{"ends unsigned", func() [][]byte { return clone(all[:9]) }, key.Public(), ErrSignature},
		{"another key", func() [][]byte { return clone(all) }, p256(t).Public(), ErrSignature},
		{"event byte edited", func() [][]byte { r := clone(all); r[3][len(r[3])-1] ^= 1; return r }, key.Public(), ErrChain},
		{"checkpoint byte edited", func() [][]byte { r := clone(all); r[10][60] ^= 1; return r }, key.Public(), ErrSignature},
		{"record removed", func() [][]byte { r := clone(all); return append(r[:4:4], r[5:]...) }, key.Public(), ErrChain},
		{"records swapped", func() [][]byte { r := clone(all); r[3], r[4] = r[4], r[3]; return r }, key.Public(), ErrChain},
		{"spliced from another journal", func() [][]byte { r := clone(all[:6]); return append(r, clone(other.raws[2:])...) }, key.Public(), ErrChain},
		{"not a record", func() [][]byte { r := clone(all); r[2] = r[2][:20]; return r }, key.Public(), ErrInvalid},
		{"empty", func() [][]byte { return nil }, key.Public(), ErrChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seg, err := CheckSegment(tt.raws(), tt.pub)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckSegment = %v, want nil", err)
				}
				if seg.Chain != j.chain || seg.Last().Type != RecordCheckpoint {
					t.Fatalf("CheckSegment chain %x last %s, want %x checkpoint", seg.Chain, seg.Last().Type, j.chain)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckSegment = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCheckSegmentEd25519: a software Ed25519 identity works the same.
func TestCheckSegmentEd25519(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	j := newJournal(t, priv)
	j.event(1)
	j.checkpoint()
	if _, err := CheckSegment(j.raws, priv.Public()); err != nil {
		t.Fatalf("CheckSegment(Ed25519) = %v", err)
	}
}

// TestCheckSegmentTruncation: a truncation record that vouches for a
// record after itself is refused even when signed.
func TestCheckSegmentTruncation(t *testing.T) {
	key := p256(t)
	j := newJournal(t, key)
	j.event(1)
	j.signed(RecordTruncation, &Signed{FirstSeq: 2, FirstPrev: Sum(j.raws[0]), Dropped: 1})
	if _, err := CheckSegment(j.raws, key.Public()); err != nil {
		t.Fatalf("CheckSegment(truncation vouching for 2) = %v", err)
	}
	k := newJournal(t, key)
	k.event(1)
	k.signed(RecordTruncation, &Signed{FirstSeq: 99, Dropped: 1})
	if _, err := CheckSegment(k.raws, key.Public()); !errors.Is(err, ErrChain) {
		t.Fatalf("CheckSegment(truncation vouching for 99) = %v, want ErrChain", err)
	}
}
