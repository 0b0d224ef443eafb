package sip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func contactAt(host string, port int) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: host, Port: port}, Params: sip.NewParams()}
}

// RFC 3261 §10.2.4: the grant is the expires param of our own Contact in
// the 200 OK, else the Expires header; Kamailio lists other bindings too.
func TestGrantedExpiry(t *testing.T) {
	ours := contactAt("127.0.0.1", 40000)
	mk := func(hdrs ...sip.Header) *sip.Response {
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "127.0.0.1"})
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		return res
	}
	other := contactAt("127.0.0.1", 40001)
	other.Params.Add("expires", "3600")
	mine := contactAt("127.0.0.1", 40000)
	mine.Params.Add("expires", "60")
	ex := sip.ExpiresHeader(120)
	tests := []struct {
		name string
		res  *sip.Response
		want time.Duration
	}{
		{"own contact param wins", mk(other, mine, &ex), 60 * time.Second},
		{"expires header", mk(other, &ex), 120 * time.Second},
		{"nothing: what we asked", mk(), 600 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := grantedExpiry(tt.res, ours, 600*time.Second); got != tt.want {
				t.Errorf("grantedExpiry = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCredentialsRedacted(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("auth", "creds", credentials{User: "alice", Password: "hunter2-secret"})
	if strings.Contains(buf.String(), "hunter2-secret") {
		t.Fatalf("log line %q contains the password", buf.String())
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log line %q, want REDACTED", buf.String())
	}
}

func TestValidate(t *testing.T) {
	mk := func(method sip.RequestMethod, scheme string, cseqMethod sip.RequestMethod, maxfwd uint32) *sip.Request {
		r := sip.NewRequest(method, sip.Uri{Scheme: scheme, User: "alice", Host: "127.0.0.1"})
		r.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: cseqMethod})
		mf := sip.MaxForwardsHeader(maxfwd)
		r.AppendHeader(&mf)
		return r
	}
	tests := []struct {
		name string
		req  *sip.Request
		want int
	}{
		{"good", mk(sip.OPTIONS, "sip", sip.OPTIONS, 70), 0},
		{"tel uri", mk(sip.OPTIONS, "tel", sip.OPTIONS, 70), 0},
		{"unknown scheme", mk(sip.OPTIONS, "http", sip.OPTIONS, 70), 416},
		{"cseq mismatch", mk(sip.OPTIONS, "sip", sip.INVITE, 70), 400},
		{"max-forwards 300", mk(sip.OPTIONS, "sip", sip.OPTIONS, 300), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := validate(tt.req); got != tt.want {
				t.Errorf("validate = %d, want %d", got, tt.want)
			}
		})
	}
	v := mk(sip.OPTIONS, "sip", sip.OPTIONS, 70)
	v.SipVersion = "SIP/7.0"
	if got, _ := validate(v); got != 505 {
		t.Errorf("validate(SIP/7.0) = %d, want 505", got)
	}
}
