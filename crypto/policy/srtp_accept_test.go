package policy

import "testing"

// TestDTLSNames checks the names and code points against RFC 5764 §4.1.2
// (SRTP_AES128_CM_HMAC_SHA1_80 = {0x00,0x01}, _32 = {0x00,0x02}) and
// RFC 7714 §14.2 (SRTP_AEAD_AES_128_GCM = {0x00,0x07}, _256_GCM = {0x00,0x08}).
func TestDTLSNames(t *testing.T) {
	want := map[string]uint16{
		"SRTP_AES128_CM_HMAC_SHA1_80": 0x0001,
		"SRTP_AES128_CM_HMAC_SHA1_32": 0x0002,
		"SRTP_AEAD_AES_128_GCM":       0x0007,
		"SRTP_AEAD_AES_256_GCM":       0x0008,
	}
	got := AcceptedSRTPSuites()
	if len(got) != len(want) {
		t.Fatalf("AcceptedSRTPSuites() has %d suites, want %d", len(got), len(want))
	}
	for _, s := range got {
		id, ok := want[s.DTLSName()]
		if !ok {
			t.Errorf("suite %s: DTLSName() = %q, not a registered name", s.SDESName, s.DTLSName())
			continue
		}
		if uint16(s.DTLS) != id {
			t.Errorf("suite %s: profile %#04x, want %#04x", s.SDESName, uint16(s.DTLS), id)
		}
	}
}

// TestAcceptedSRTPSuitesOrder: offered suites come first, in offer order.
func TestAcceptedSRTPSuitesOrder(t *testing.T) {
	off, acc := SRTPSuites(), AcceptedSRTPSuites()
	for i := range off {
		if acc[i].SDESName != off[i].SDESName {
			t.Fatalf("AcceptedSRTPSuites()[%d] = %s, want %s", i, acc[i].SDESName, off[i].SDESName)
		}
	}
	for _, s := range acc {
		if _, err := SRTPSuiteBySDESName(s.SDESName); err != nil {
			t.Errorf("SRTPSuiteBySDESName(%s) = %v, want accepted", s.SDESName, err)
		}
	}
}
