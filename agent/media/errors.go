package media

import "errors"

// ErrNotAcceptable is wrapped by every refusal of an offer or answer: no
// acceptable crypto (plain RTP, a weak or unknown suite, a bad key, a missing
// or refused fingerprint), no common codec, or an SDP that does not parse.
// The SIP layer answers 488 Not Acceptable Here to an offer refused with it.
var ErrNotAcceptable = errors.New("media: not acceptable")

// ErrInsecureSignaling is returned by NewSession for keying over signalling
// that is not TLS. SDES keys would travel in clear; a DTLS-SRTP fingerprint
// would be whatever a spoofer put in the SDP, so the handshake would
// authenticate the spoofer. It also wraps ErrNotAcceptable, so an inbound
// call in that state is answered 488.
var ErrInsecureSignaling = errors.New("media: sdes requires tls signalling")

// ErrDestination is wrapped (beside ErrNotAcceptable) by the refusal of an
// SDP that aims the media at an address or port DestinationPolicy refuses:
// an offer is answered 488, an answer ends the call.
var ErrDestination = errors.New("media: destination refused")

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("media: session closed")

var (
	errState        = errors.New("wrong session state")
	errSDPSyntax    = errors.New("sdp syntax")
	errNoKeys       = errors.New("no srtp context: refusing to send")
	errNotDTLS      = errors.New("refusing to send a non-DTLS datagram on the DTLS path")
	errFingerprint  = errors.New("dtls peer certificate does not match a=fingerprint")
	errNoDTMF       = errors.New("peer did not negotiate telephone-event")
	errNotSending   = errors.New("call direction does not allow sending")
	errDTMFBusy     = errors.New("dtmf queue full")
	errBadDigit     = errors.New("not a DTMF digit")
	errBadDuration  = errors.New("dtmf duration out of range")
	errReplay       = errors.New("srtp replay")
	errAuth         = errors.New("srtp authentication failed")
	errMalformed    = errors.New("malformed packet")
	errSecurityKept = errors.New("re-offer changes the negotiated security")
)
