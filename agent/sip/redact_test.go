package sip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLibraryFilter: what sipgo logs about a message it could not parse is
// attacker text: its SDES key, digest response and bulk never reach our
// log, and control characters cannot forge log lines.
func TestLibraryFilter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(&libraryFilter{next: slog.NewTextHandler(&buf, nil)})
	raw := "INVITE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n" +
		"Authorization: Digest username=\"alice\", response=\"6629fae49393a05397450978507c4ef1\", nonce=\"abc\"\r\n" +
		"Content-Length: 9999\r\n\r\nv=0\r\nm=audio 30000 RTP/SAVP 0\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n" + strings.Repeat("x", 5000)
	log.Error("failed to parse", "error", "reading body incomplete: "+raw, "data", raw)
	log.With("req", raw).Warn("forged\nlevel=ERROR msg=\"fake line\"")
	out := buf.String()
	for _, secret := range []string{"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "6629fae49393a05397450978507c4ef1", "xxxxxxxxxx"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("log has %d lines, want 2 (no forged line):\n%s", n, out)
	}
	if !strings.Contains(out, `data="INVITE sip:alice@127.0.0.1 SIP/2.0 [`) {
		t.Errorf("raw message not reduced to its first line and size:\n%s", out)
	}
	if len(out) > 1500 {
		t.Errorf("log output is %d bytes for two records, want it bounded", len(out))
	}
}
