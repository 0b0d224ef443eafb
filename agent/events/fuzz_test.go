package events

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// seedRecords returns real records of every type, from a journal that
// also truncated.
func seedRecords(f *testing.F) [][]byte {
	db, key, clk := newDB(f), newKey(f), newClock()
	j := openJournal(f, db, key, clk, WithCheckpointEvery(4), WithMaxBytes(MinMaxBytes))
	if _, err := j.enableCursor(); err != nil {
		f.Fatalf("enableCursor = %v", err)
	}
	appendN(f, j, clk, 2500, 50)
	var out [][]byte
	seen := map[RecordType]int{}
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).Bucket(bucketRecords).ForEach(func(_, v []byte) error {
			if t := RecordType(v[33]); seen[t] < 3 {
				seen[t]++
				out = append(out, cloneBytes(v))
			}
			return nil
		})
	})
	out = append(out, getRaw(f, db, j.Stats().Head))
	return out
}

// FuzzDecodeRecord feeds the record decoder what an attacker with the
// state file could store. It must never panic; what decodes must
// re-encode to the same bytes (the encoding is canonical, so the chain
// hash of a decoded record is the hash of what was stored) and must
// format as a syslog message the RFC 5424 parser takes.
//
//fuzz:budget 120000
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range seedRecords(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := decodeRecord(raw)
		if err != nil {
			return
		}
		again, err := rec.reencode()
		if err != nil {
			t.Fatalf("re-encode of a decoded record: %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("re-encode = %x, stored %x: encoding not canonical", again, raw)
		}
		rec.chain = "00"
		msg, err := formatRecord(rec, "phone")
		if err != nil {
			t.Fatalf("formatRecord(decoded) = %v", err)
		}
		p, err := parseSyslog(msg)
		if err != nil {
			t.Fatalf("formatted %q does not parse: %v", msg, err)
		}
		if p.sd[sdChain]["seq"] != strconv.FormatUint(rec.Seq, 10) {
			t.Fatalf("parsed seq %q, want %d", p.sd[sdChain]["seq"], rec.Seq)
		}
	})
}

// FuzzSyslog builds events from attacker-chosen strings and checks the
// exported message: within MaxMessage, parsed by an independent RFC 5424
// parser, with every field coming back as the cleaned value.
//
//fuzz:budget 70000
func FuzzSyslog(f *testing.F) {
	f.Add(uint8(5), "alice", "user_agent", "friendly-scanner", []byte{192, 0, 2, 1}, uint16(5060), int64(1740830400000000), "phone")
	f.Add(uint8(0), "", "uri", `sip:"]\@x`, []byte{}, uint16(0), int64(0), "")
	f.Add(uint8(9), "bob\x1b[2J", "from", "\u202e\xff\xfe", bytes.Repeat([]byte{0x20}, 16), uint16(65535), int64(253402300799999999), "h h")
	kindList := Kinds()
	f.Fuzz(func(t *testing.T, ki uint8, account, key, value string, addr []byte, port uint16, us int64, host string) {
		ev := Event{Kind: kindList[int(ki)%len(kindList)], Account: account, Detail: Detail{key: value},
			Time: time.UnixMicro(us).UTC()}
		if a, ok := netip.AddrFromSlice(addr); ok {
			ev.Peer = netip.AddrPortFrom(a, port)
		}
		c, err := sanitize(ev)
		if err != nil {
			return // a malformed key: refused, fine
		}
		if us < 0 || us >= maxTimeMicro {
			return // Append refuses these
		}
		c.Seq = uint64(us)%1000 + 1
		rec, err := decodeRecord(encodeEvent(Hash{}, &c))
		if err != nil {
			t.Fatalf("decode(encode(%+v)) = %v", c, err)
		}
		rec.chain = "ab"
		msg, err := formatRecord(rec, host)
		if err != nil {
			t.Fatalf("formatRecord = %v", err)
		}
		p, err := parseSyslog(msg)
		if err != nil {
			t.Fatalf("message %q does not parse: %v", msg, err)
		}
		wantHost := syslogHostname(host)
		if wantHost == "-" {
			wantHost = "" // the NILVALUE, §6.2.4
		}
		if p.msgID != string(c.Kind) || p.host != wantHost || !p.time.Equal(c.Time) {
			t.Fatalf("parsed msgid %q host %q time %v, want %q %q %v", p.msgID, p.host, p.time, c.Kind, wantHost, c.Time)
		}
		if got := p.sd[sdDetail][key]; got != c.Detail[key] {
			t.Fatalf("parsed detail %q = %q, want %q", key, got, c.Detail[key])
		}
		if got := p.sd[sdEvent]["account"]; got != c.Account {
			t.Fatalf("parsed account %q, want %q", got, c.Account)
		}
		if c.Peer.IsValid() && p.sd[sdEvent]["peer"] != c.Peer.String() {
			t.Fatalf("parsed peer %q, want %q", p.sd[sdEvent]["peer"], c.Peer)
		}
	})
}
