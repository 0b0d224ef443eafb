package events

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// The JSON shape of a record, one object per record (`hardphone events
// --json` prints one per line):
//
//	{"seq":12,"type":"event","time":"2025-03-01T12:00:00.123456Z",
//	 "hash":"<64 hex>","prev":"<64 hex>",
//	 "event":{"kind":"sip.scanner","severity":"warning","severity_code":4,
//	          "account":"alice","peer":"192.0.2.1:5060",
//	          "detail":{"user_agent":"friendly-scanner"},
//	          "text":"SIP scanner user agent seen (account alice) from 192.0.2.1:5060"}}
//	{"seq":13,"type":"checkpoint",...,
//	 "signed":{"chain":"<32 hex>","key":"<64 hex>","reason":"count","sig":"<base64>"}}
//	{"seq":14,"type":"truncation",...,
//	 "signed":{...,"first_seq":9001,"first_prev":"<64 hex>","dropped":9000,"undelivered":0}}
//	{"seq":15,"hash":"...","error":"record does not decode: ..."}
//
// Every string in it was cleaned before it was stored (no control or bidi
// characters), and encoding/json escapes the rest.
type jsonRecord struct {
	Seq    uint64      `json:"seq"`
	Type   *RecordType `json:"type,omitempty"`
	Time   string      `json:"time,omitempty"`
	Hash   string      `json:"hash"`
	Prev   string      `json:"prev,omitempty"`
	Event  *jsonEvent  `json:"event,omitempty"`
	Signed *jsonSigned `json:"signed,omitempty"`
	Error  string      `json:"error,omitempty"`
}

type jsonEvent struct {
	Kind         Kind     `json:"kind"`
	Severity     Severity `json:"severity"`
	SeverityCode uint8    `json:"severity_code"`
	Account      string   `json:"account,omitempty"`
	Peer         string   `json:"peer,omitempty"`
	Detail       Detail   `json:"detail,omitempty"`
	Text         string   `json:"text"`
}

type jsonSigned struct {
	Chain       string  `json:"chain"`
	Key         string  `json:"key"`
	Reason      *Reason `json:"reason,omitempty"`
	FirstSeq    uint64  `json:"first_seq,omitempty"`
	FirstPrev   string  `json:"first_prev,omitempty"`
	Dropped     *uint64 `json:"dropped,omitempty"`
	Undelivered *uint64 `json:"undelivered,omitempty"`
	Sig         []byte  `json:"sig"`
}

const jsonTime = "2006-01-02T15:04:05.000000Z07:00"

// MarshalJSON renders the record in the shape above.
func (r Record) MarshalJSON() ([]byte, error) {
	out := jsonRecord{Seq: r.Seq, Hash: hex.EncodeToString(r.Hash[:])}
	if r.Err != nil && r.Event == nil && r.Signed == nil {
		out.Error = r.Err.Error()
		return json.Marshal(out)
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	t := r.Type
	out.Type, out.Time, out.Prev = &t, r.Time.UTC().Format(jsonTime), hex.EncodeToString(r.Prev[:])
	if ev := r.Event; ev != nil {
		je := &jsonEvent{Kind: ev.Kind, Severity: ev.Severity, SeverityCode: uint8(ev.Severity), Account: ev.Account, Detail: ev.Detail, Text: ev.Text()}
		if ev.Peer.IsValid() {
			je.Peer = ev.Peer.String()
		}
		out.Event = je
	}
	if s := r.Signed; s != nil {
		js := &jsonSigned{Chain: hex.EncodeToString(s.Chain[:]), Key: hex.EncodeToString(s.Key[:]), Sig: s.Sig}
		switch r.Type {
		case RecordCheckpoint:
			reason := s.Reason
			js.Reason = &reason
		case RecordTruncation:
			d, u := s.Dropped, s.Undelivered
			js.FirstSeq, js.FirstPrev, js.Dropped, js.Undelivered = s.FirstSeq, hex.EncodeToString(s.FirstPrev[:]), &d, &u
		}
		out.Signed = js
	}
	return json.Marshal(out)
}

// String is one line for a terminal: seq, time, then the severity, kind,
// account, peer and detail of an event, or what a signed record says.
// Values are quoted; they were cleaned before they were stored.
func (r Record) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(r.Seq, 10))
	if r.Event == nil && r.Signed == nil {
		b.WriteString(" damaged record: ")
		if r.Err != nil {
			b.WriteString(r.Err.Error())
		}
		return b.String()
	}
	b.WriteString(" " + r.Time.UTC().Format(time.RFC3339) + " ")
	if ev := r.Event; ev != nil {
		b.WriteString(ev.Severity.String() + " " + string(ev.Kind))
		if ev.Account != "" {
			b.WriteString(" account=" + strconv.Quote(ev.Account))
		}
		if ev.Peer.IsValid() {
			b.WriteString(" peer=" + ev.Peer.String())
		}
		for _, k := range ev.Detail.sortedKeys() {
			b.WriteString(" " + k + "=" + strconv.Quote(ev.Detail[k]))
		}
	} else {
		s := r.Signed
		b.WriteString(r.Type.String())
		switch r.Type {
		case RecordCheckpoint:
			b.WriteString(" reason=" + s.Reason.String())
		case RecordTruncation:
			b.WriteString(" first=" + strconv.FormatUint(s.FirstSeq, 10) + " dropped=" + strconv.FormatUint(s.Dropped, 10) +
				" undelivered=" + strconv.FormatUint(s.Undelivered, 10))
		}
		b.WriteString(" key=" + hex.EncodeToString(s.Key[:8]))
	}
	if r.Err != nil {
		b.WriteString(" (" + r.Err.Error() + ")")
	}
	return b.String()
}
