package media

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/crypto/policy"
)

// rfc4566Example is the example session description of RFC 4566 §5.
const rfc4566Example = "v=0\r\n" +
	"o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n" +
	"s=SDP Seminar\r\n" +
	"i=A Seminar on the session description protocol\r\n" +
	"u=http://www.example.com/seminars/sdp.pdf\r\n" +
	"e=j.doe@example.com (Jane Doe)\r\n" +
	"c=IN IP4 224.2.17.12/127\r\n" +
	"t=2873397496 2873404696\r\n" +
	"a=recvonly\r\n" +
	"m=audio 49170 RTP/AVP 0\r\n" +
	"m=video 51372 RTP/AVP 99\r\n" +
	"a=rtpmap:99 h263-1998/90000\r\n"

func TestParseSDPRFC4566Example(t *testing.T) {
	sd, err := parseSDP([]byte(rfc4566Example))
	if err != nil {
		t.Fatalf("parseSDP(RFC 4566 example) = %v", err)
	}
	if sd.Origin.User != "jdoe" || sd.Origin.SessID != "2890844526" || sd.Name != "SDP Seminar" {
		t.Fatalf("origin %+v name %q", sd.Origin, sd.Name)
	}
	if len(sd.Media) != 2 || sd.Media[0].Port != 49170 || sd.Media[1].Proto != protoAVP || sd.Media[1].Formats[0] != "99" {
		t.Fatalf("media %+v", sd.Media)
	}
	if d := sd.mediaDirection(&sd.Media[0]); d != dirRecv {
		t.Fatalf("session-level a=recvonly gives %v for m=audio", d)
	}
	if v, _, _, ok := rtpmap(&sd.Media[1], 99); !ok || v != "h263-1998" {
		t.Fatalf("rtpmap 99 = %q, %v", v, ok)
	}
	// Multicast with a TTL parses, but a call cannot use it.
	if _, err := sd.connAddr(&sd.Media[0]); !errors.Is(err, ErrNotAcceptable) {
		t.Fatalf("connAddr(224.2.17.12/127) = %v, want ErrNotAcceptable", err)
	}
	again, err := parseSDP(sd.marshal())
	if err != nil || !reflect.DeepEqual(again, sd) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, again, sd)
	}
}

// TestFingerprintRFC8122 parses the example of RFC 8122 §5 (which uses
// SHA-1, as RFC 4572 did): it is well-formed, and the policy refuses it.
func TestFingerprintRFC8122(t *testing.T) {
	const v = "SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"
	f, err := parseFingerprint(v)
	if err != nil || f.Hash != "sha-1" || len(f.Value) != 20 || f.Value[0] != 0x4A || f.Value[19] != 0xAB {
		t.Fatalf("parseFingerprint(%q) = %+v, %v", v, f, err)
	}
	if _, err := acceptFingerprints([]string{v}); !errors.Is(err, policy.ErrWeakAlgorithm) || !errors.Is(err, ErrNotAcceptable) {
		t.Fatalf("acceptFingerprints(sha-1) = %v, want ErrWeakAlgorithm and ErrNotAcceptable", err)
	}
	// With a SHA-256 value beside it, the SHA-256 one is used (§5: the
	// strongest hash offered).
	id, err := newDTLSIdentity()
	if err != nil {
		t.Fatal(err)
	}
	fps, err := acceptFingerprints([]string{v, id.fp.String()})
	if err != nil || len(fps) != 1 || fps[0].Hash != "sha-256" {
		t.Fatalf("acceptFingerprints(sha-1, sha-256) = %+v, %v", fps, err)
	}
	if err := matchFingerprint(id.cert.Certificate[0], fps); err != nil {
		t.Fatalf("matchFingerprint(own certificate) = %v", err)
	}
	other, _ := newDTLSIdentity()
	if err := matchFingerprint(other.cert.Certificate[0], fps); !errors.Is(err, errFingerprint) {
		t.Fatalf("matchFingerprint(other certificate) = %v, want errFingerprint", err)
	}
	// Our own value: "sha-256" and 32 upper-case hex bytes joined by ':'.
	if s := id.fp.String(); !strings.HasPrefix(s, policy.FingerprintHash+" ") || len(s) != len("sha-256 ")+32*3-1 || strings.ToUpper(s[8:]) != s[8:] {
		t.Fatalf("own fingerprint %q", s)
	}
}

// TestDemuxRFC7983 checks the first-byte ranges of RFC 7983 §7 and the
// RTCP packet-type range of RFC 5761 §4.
func TestDemuxRFC7983(t *testing.T) {
	for b := 0; b < 256; b++ {
		want := classOther
		switch {
		case b >= 20 && b <= 63:
			want = classDTLS
		case b >= 128 && b <= 191:
			want = classRTP
		}
		if got := classify(byte(b)); got != want {
			t.Fatalf("classify(%d) = %v, want %v", b, got, want)
		}
	}
	for pt := 0; pt < 256; pt++ {
		if got, want := isRTCP([]byte{0x80, byte(pt)}), pt >= 192 && pt <= 223; got != want {
			t.Fatalf("isRTCP(second byte %d) = %v, want %v", pt, got, want)
		}
	}
}

// TestDirectionRFC3264: the answer's direction is the offer's reversed
// (RFC 3264 §6.1), intersected with what we want.
func TestDirectionRFC3264(t *testing.T) {
	for _, tt := range []struct{ offer, want direction }{
		{dirSendRecv, dirSendRecv}, {dirSend, dirRecv}, {dirRecv, dirSend}, {dirInactive, dirInactive},
	} {
		if got := tt.offer.reverse(); got != tt.want {
			t.Errorf("%v.reverse() = %v, want %v", tt.offer, got, tt.want)
		}
	}
}

func TestParseSDPRefuses(t *testing.T) {
	good := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n"
	tests := map[string]string{
		"empty":          "",
		"no v":           "o=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n",
		"v=1":            "v=1\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n",
		"no o":           "v=0\r\ns=-\r\n",
		"no s":           "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n",
		"two o":          strings.Replace(good, "s=-", "o=- 1 1 IN IP4 127.0.0.1\r\ns=-", 1),
		"short o":        strings.Replace(good, "o=- 1 1 IN IP4 127.0.0.1", "o=- 1 1", 1),
		"bad line":       good + "hello\r\n",
		"upper type":     good + "A=foo\r\n",
		"nul":            good + "a=foo\x00bar\r\n",
		"port too big":   strings.Replace(good, "4000", "65536", 1),
		"port sign":      strings.Replace(good, "4000", "+4000", 1),
		"port count 0":   strings.Replace(good, "4000", "4000/0", 1),
		"no formats":     strings.Replace(good, " RTP/SAVP 0", " RTP/SAVP", 1),
		"two media c=":   good + "c=IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.1\r\n",
		"bad attr name":  good + "a=:x\r\n",
		"o in media":     good + "o=- 1 1 IN IP4 127.0.0.1\r\n",
		"too large":      good + strings.Repeat("a=x\r\n", maxSDPBytes/5),
		"too many media": good + strings.Repeat("m=audio 4000 RTP/SAVP 0\r\n", maxMedia),
		"long line":      good + "a=x:" + strings.Repeat("y", maxSDPLineLen) + "\r\n",
		"too many fmts":  strings.Replace(good, "RTP/SAVP 0", "RTP/SAVP"+strings.Repeat(" 0", maxFormats+1), 1),
	}
	for name, body := range tests {
		if _, err := parseSDP([]byte(body)); !errors.Is(err, errSDPSyntax) {
			t.Errorf("parseSDP(%s) = %v, want errSDPSyntax", name, err)
		}
	}
	// LF-only line ends and trailing blanks are fine.
	if _, err := parseSDP([]byte(strings.ReplaceAll(good, "\r\n", " \n"))); err != nil {
		t.Errorf("parseSDP(LF line ends) = %v", err)
	}
}
