package policy

import (
	"fmt"

	"github.com/pion/dtls/v3"
)

// AcceptedSRTPSuites returns every suite we take from a peer, most preferred
// first: the offered suites (SRTPSuites) followed by those we accept but
// never offer. An SDES answerer picks the first of these that the offer holds.
func AcceptedSRTPSuites() []SRTPSuite { return acceptedSuites() }

// DTLSName is the suite's use_srtp profile name as registered by RFC 5764
// §4.1.2 and RFC 7714 §14.2 (for example "SRTP_AEAD_AES_128_GCM").
func (s SRTPSuite) DTLSName() string {
	switch s.DTLS {
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		return "SRTP_AES128_CM_HMAC_SHA1_80"
	case dtls.SRTP_AES128_CM_HMAC_SHA1_32:
		return "SRTP_AES128_CM_HMAC_SHA1_32"
	case dtls.SRTP_AEAD_AES_128_GCM:
		return "SRTP_AEAD_AES_128_GCM"
	case dtls.SRTP_AEAD_AES_256_GCM:
		return "SRTP_AEAD_AES_256_GCM"
	}
	return fmt.Sprintf("SRTP_PROFILE_%#04x", uint16(s.DTLS))
}
