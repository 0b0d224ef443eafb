package sip

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzRequestValidate feeds raw datagrams through sipgo's parser and our
// RFC 3261 request checks, as a plain listener would. Property: no panic,
// and a request validate accepts has the invariants it claims to check.
//
//fuzz:budget 150000
func FuzzRequestValidate(f *testing.F) {
	f.Add([]byte("OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE sip:alice@127.0.0.1 SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE nobodyKnowsThisScheme:x SIP/2.0\r\nCSeq: 1 INVITE\r\nMax-Forwards: 300\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := sip.ParseMessage(b)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		code, _ := validate(req)
		if code != 0 {
			if code < 400 || code > 599 {
				t.Fatalf("validate = %d, want a 4xx/5xx", code)
			}
			return
		}
		if req.SipVersion != "SIP/2.0" {
			t.Fatalf("validate accepted version %q", req.SipVersion)
		}
		if cs := req.CSeq(); cs == nil {
			t.Fatalf("validate accepted a request without CSeq")
		}
	})
}
