package audit

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 123456789, time.UTC)

func fullEntry() Entry {
	return Entry{
		Index: 42, Time: t0,
		Actor:     Actor{Kind: ActorAdmin, ID: "alice"},
		Action:    ActionApprovalGrant,
		Target:    "rollout/fw-2.1",
		Outcome:   OutcomeSuccess,
		Source:    netip.MustParseAddr("2001:db8::7"),
		Approvals: []string{"appr-1", "appr-2"},
		Details:   map[string]string{"ring": "canary", "bundle": "sha256:ab", "z_last": "ünïcode"},
		Device: &DeviceEvent{Device: "dev-1", Kind: "control.refused", Severity: 4, Seq: 9,
			Time: t0.Add(-time.Hour), Hash: Hash{1, 2, 3}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
	}{
		{"full", fullEntry()},
		{"minimal", Entry{Time: t0, Actor: Actor{Kind: ActorSystem}, Action: "x", Outcome: OutcomeFailure}},
		{"ipv4 source", Entry{Time: t0, Actor: Actor{Kind: ActorUnknown, ID: "mallory"}, Action: ActionLogin,
			Outcome: OutcomeDenied, Source: netip.MustParseAddr("198.51.100.1")}},
		{"device time unknown", Entry{Time: t0, Actor: Actor{Kind: ActorDevice, ID: "d"}, Action: ActionDeviceEvent,
			Outcome: OutcomeSuccess, Device: &DeviceEvent{Device: "d", Kind: "k"}}},
		{"strings at their bounds", Entry{Time: t0, Actor: Actor{Kind: ActorAdmin, ID: strings.Repeat("a", MaxActorLen)},
			Action: Action("a" + strings.Repeat("b", MaxActionLen-1)), Target: strings.Repeat("é", MaxTargetLen/2),
			Outcome: OutcomePending}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.e.Encode()
			if err != nil {
				t.Fatalf("Encode() error %v", err)
			}
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry(Encode()) error %v", err)
			}
			again, err := got.Encode()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("Encode(DecodeEntry(b)) = %x, %v; want %x", again, err, b)
			}
			if got.String() != tt.e.String() || !got.Time.Equal(tt.e.Time) || got.Source != tt.e.Source {
				t.Fatalf("DecodeEntry(Encode(e)) = %v, want %v", got, tt.e)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	e := Entry{
		Time:    time.Date(2026, 1, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600)),
		Actor:   Actor{Kind: ActorUnknown, ID: "bob\x1b[2J\u202eevil" + strings.Repeat("x", 300)},
		Action:  ActionLogin,
		Target:  "bad utf8 \xff\xfe",
		Outcome: OutcomeFailure,
		Source:  netip.MustParseAddr("::ffff:192.0.2.1"),
	}
	n := e.normalize()
	if _, err := n.Encode(); err != nil {
		t.Fatalf("Encode(normalize(e)) error %v", err)
	}
	if want := "bob?[2J?evil"; !strings.HasPrefix(n.Actor.ID, want) || len(n.Actor.ID) != MaxActorLen {
		t.Errorf("normalize().Actor.ID = %q (%d bytes), want prefix %q and %d bytes", n.Actor.ID, len(n.Actor.ID), want, MaxActorLen)
	}
	if n.Target != "bad utf8 ??" {
		t.Errorf("normalize().Target = %q, want %q", n.Target, "bad utf8 ??")
	}
	if n.Source != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("normalize().Source = %v, want 192.0.2.1", n.Source)
	}
	if n.Time.Location() != time.UTC || !n.Time.Equal(e.Time) {
		t.Errorf("normalize().Time = %v, want %v in UTC", n.Time, e.Time)
	}
	// Encode does not clean: an unclean entry is refused, not changed.
	if _, err := e.Encode(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode(unclean) error %v, want ErrInvalid", err)
	}
}

func TestDecodeRefusesNonCanonical(t *testing.T) {
	good, err := func() ([]byte, error) { e := fullEntry(); return e.Encode() }()
	if err != nil {
		t.Fatal(err)
	}
	mapped := Entry{Time: t0, Actor: Actor{Kind: ActorSystem}, Action: "x", Outcome: OutcomeSuccess,
		Source: netip.MustParseAddr("192.0.2.1")}
	mb, _ := mapped.Encode()
	// Rewrite the 4-byte source as its 16-byte IPv4-mapped form.
	i := bytes.Index(mb, []byte{4, 192, 0, 2, 1})
	v6 := netip.MustParseAddr("::ffff:192.0.2.1").As16()
	mappedBytes := append(append(append(bytes.Clone(mb[:i]), 16), v6[:]...), mb[i+5:]...)

	unsorted := Entry{Time: t0, Actor: Actor{Kind: ActorSystem}, Action: "x", Outcome: OutcomeSuccess,
		Details: map[string]string{"a": "1", "b": "2"}}
	ub, _ := unsorted.Encode()
	ia, ib := bytes.Index(ub, []byte{1, 'a'}), bytes.Index(ub, []byte{1, 'b'})
	swapped := bytes.Clone(ub)
	copy(swapped[ia:], ub[ib:ib+5])
	copy(swapped[ia+5:], ub[ia:ia+5])

	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
		{"version 2", append([]byte{2}, good[1:]...)},
		{"unknown actor code", func() []byte { b := bytes.Clone(good); b[17] = 9; return b }()},
		{"mapped IPv4 source", mappedBytes},
		{"detail keys out of order", swapped},
		{"too large", make([]byte, MaxEntrySize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := DecodeEntry(tt.b); !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeEntry(%s) = %v, %v; want ErrInvalid", tt.name, e, err)
			}
		})
	}
}

func TestDecodeRefusalReasons(t *testing.T) {
	e := Entry{Time: t0, Actor: Actor{Kind: ActorSystem}, Action: "x", Outcome: OutcomeSuccess,
		Details: map[string]string{"a": "1", "b": "2"}}
	b, _ := e.Encode()
	ia, ib := bytes.Index(b, []byte{1, 'a'}), bytes.Index(b, []byte{1, 'b'})
	sw := bytes.Clone(b)
	copy(sw[ia:], b[ib:ib+5])
	copy(sw[ia+5:], b[ia:ia+5])
	if _, err := DecodeEntry(sw); err == nil || !strings.Contains(err.Error(), `detail key "a" after "b"`) {
		t.Fatalf("DecodeEntry(keys swapped) error %v, want detail key \"a\" after \"b\"", err)
	}
}
