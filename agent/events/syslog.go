package events

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// An exported record is one RFC 5424 message (§6):
//
//	<PRI>1 TIMESTAMP HOSTNAME hardphone - MSGID [chain@32473 ...][event@32473 ...][detail@32473 ...] MSG
//
//	PRI       facility 4 (security/authorization, §6.2.1 Table 1) * 8 + severity
//	TIMESTAMP the record's time, UTC, microseconds (§6.2.3)
//	MSGID     the event's kind, or events.genesis / events.checkpoint /
//	          events.truncation for signed records (§6.2.7: <= 32 ASCII)
//	chain     seq, chain (journal ID), hash (this record's chain hash) and
//	          prev (the previous record's): a collector sees order, gaps
//	          (seq), a journal replaced (chain) and can check that each
//	          prev is the hash it received before.
//	event     severity name, account, peer
//	detail    the event's detail fields, by key
//	signed    on signed records: key ID, reason, truncation fields and the
//	          signature (base64), so the collector keeps signed heads
//	MSG       a short ASCII description (no BOM needed, §6.4)
//
// The SD-IDs carry 32473, the private enterprise number RFC 5612 reserves
// for documentation, until hardphone has one of its own (§7.2.2 wants
// name@PEN for SD-IDs that are not IANA-registered).
const (
	facilityAuth = 4
	appName      = "hardphone"
	sdChain      = "chain@32473"
	sdEvent      = "event@32473"
	sdDetail     = "detail@32473"
	sdSigned     = "signed@32473"
	// MaxMessage bounds one formatted message. RFC 5425 §4.3.1: receivers
	// SHOULD take 8192 octets; the field bounds keep every event far below.
	MaxMessage = 8192
	maxHost    = 255
)

// syslogHostname makes a configured host name fit HOSTNAME (§6.2.4: 1 to
// 255 PRINTUSASCII, "-" for none).
func syslogHostname(h string) string {
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < maxHost; i++ {
		if c := h[i]; c > 32 && c < 127 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// sdEscape escapes a PARAM-VALUE: §6.3.3 says '"', '\' and ']' MUST be
// escaped with a backslash. The value is UTF-8 already (clean made it so).
func sdEscape(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', ']':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
}

type sdParam struct{ name, value string }

func writeSD(b *strings.Builder, id string, params []sdParam) {
	if len(params) == 0 {
		return
	}
	b.WriteByte('[')
	b.WriteString(id)
	for _, p := range params {
		b.WriteByte(' ')
		b.WriteString(p.name)
		b.WriteString(`="`)
		sdEscape(b, p.value)
		b.WriteByte('"')
	}
	b.WriteByte(']')
}

// formatRecord renders a decoded record as an RFC 5424 message.
func formatRecord(rec *Record, host string) ([]byte, error) {
	var (
		sev   Severity
		msgID string
		text  string
	)
	switch {
	case rec.Event != nil:
		sev, msgID = rec.Event.Severity, string(rec.Event.Kind)
		text = asciiText(rec.Event)
	case rec.Signed != nil:
		sev, msgID = SeverityInfo, "events."+rec.Type.String()
		text = "event journal " + rec.Type.String()
		if rec.Type == RecordTruncation {
			sev = SeverityNotice
			text = fmt.Sprintf("event journal truncated: %d records dropped, %d of them not exported", rec.Signed.Dropped, rec.Signed.Undelivered)
		}
	default:
		return nil, fmt.Errorf("format record %d: nothing to format", rec.Seq)
	}
	if !sev.Valid() {
		return nil, fmt.Errorf("format record %d: severity %d", rec.Seq, sev)
	}
	var b strings.Builder
	b.Grow(512)
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(facilityAuth*8 + int(sev)))
	b.WriteString(">1 ")
	b.WriteString(rec.Time.UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteByte(' ')
	b.WriteString(syslogHostname(host))
	b.WriteString(" " + appName + " - ")
	b.WriteString(msgID)
	b.WriteByte(' ')
	writeSD(&b, sdChain, []sdParam{
		{"seq", strconv.FormatUint(rec.Seq, 10)},
		{"chain", chainOf(rec)},
		{"hash", hex.EncodeToString(rec.Hash[:])},
		{"prev", hex.EncodeToString(rec.Prev[:])},
	})
	if ev := rec.Event; ev != nil {
		p := []sdParam{{"severity", ev.Severity.String()}}
		if ev.Account != "" {
			p = append(p, sdParam{"account", ev.Account})
		}
		if ev.Peer.IsValid() {
			p = append(p, sdParam{"peer", ev.Peer.String()})
		}
		writeSD(&b, sdEvent, p)
		var d []sdParam
		for _, k := range ev.Detail.sortedKeys() {
			d = append(d, sdParam{k, ev.Detail[k]})
		}
		writeSD(&b, sdDetail, d)
	}
	if s := rec.Signed; s != nil {
		p := []sdParam{{"key", hex.EncodeToString(s.Key[:])}}
		switch rec.Type {
		case RecordCheckpoint:
			p = append(p, sdParam{"reason", s.Reason.String()})
		case RecordTruncation:
			p = append(p,
				sdParam{"first", strconv.FormatUint(s.FirstSeq, 10)},
				sdParam{"first_prev", hex.EncodeToString(s.FirstPrev[:])},
				sdParam{"dropped", strconv.FormatUint(s.Dropped, 10)},
				sdParam{"undelivered", strconv.FormatUint(s.Undelivered, 10)})
		}
		p = append(p, sdParam{"sig", base64.StdEncoding.EncodeToString(s.Sig)})
		writeSD(&b, sdSigned, p)
	}
	b.WriteByte(' ')
	b.WriteString(text)
	if b.Len() > MaxMessage {
		return nil, fmt.Errorf("format record %d: message of %d bytes, at most %d", rec.Seq, b.Len(), MaxMessage)
	}
	return []byte(b.String()), nil
}

// chainOf is the journal ID a record belongs to, as the exporter knows it.
// Event records do not carry it; the exporter sets it (see exportRecord).
func chainOf(rec *Record) string {
	if rec.Signed != nil {
		return hex.EncodeToString(rec.Signed.Chain[:])
	}
	return rec.chain
}

// asciiText is an event's MSG: its description and the peer. The account
// and detail go in STRUCTURED-DATA, where UTF-8 is allowed.
func asciiText(ev *Event) string {
	t := string(ev.Kind)
	if i, ok := kinds[ev.Kind]; ok {
		t = i.text
	}
	if ev.Peer.IsValid() {
		t += " from " + ev.Peer.String()
	}
	return t
}

// frame is RFC 5425 §4.3 octet-counting: MSG-LEN SP SYSLOG-MSG.
func frame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}
