// Package media is the phone's media layer: SDP offer/answer under the SRTP
// policy, SRTP/SRTCP keyed by SDES (RFC 4568) or DTLS-SRTP (RFC 5763/5764),
// G.722 and G.711 audio (codec.go), RFC 4733 DTMF, and the pump between a
// call and a hal/audio Source and Sink: the send loop (send.go, paced by a
// live microphone or a timer; mute and levels), and on the receive side an
// adaptive jitter buffer (jitter.go) emptied by a playout clock
// (playout.go) with packet-loss concealment (plc.go), each side converting
// between the device's sample rate and the codec's (resample.go).
//
// Threat: a downgrade or an injection on the media path. SRTP is mandatory:
// an offer or answer without acceptable crypto (plain RTP/AVP, a suite outside
// crypto/policy, a malformed key, DTLS without a fingerprint or with a refused
// hash) is refused with an error that wraps ErrNotAcceptable, and the send
// path has no way to write a plaintext RTP packet: every RTP and RTCP datagram
// goes through an SRTP context, which exists only after keys are agreed (and,
// for DTLS, after the peer certificate matched its signalled fingerprint).
// Received packets that fail authentication or replay checks are dropped and
// counted; the call goes on. SDES keys cross the signalling path and a
// DTLS-SRTP fingerprint is only as authentic as the SDP that carries it, so
// both are refused unless that path is TLS. Every crypto choice comes from
// crypto/policy.
//
// A hostile SDP may also aim the media somewhere that is not a phone (this
// host, a link-local neighbour, a multicast group, a well-known port) and
// turn the phone into a reflector: DestinationPolicy refuses such
// addresses unless the caller lists them (destination.go).
//
// Packets whose source is not the address the peer's SDP names (IP and port,
// per component) are dropped and counted in Stats.ForeignDropped: the peer
// declared where it sends from, lockdown opens pinholes for exactly those
// addresses, and SRTP authentication stays the real guard either way.
//
// Once a peer holds the keys it controls every field of the audio packets:
// the jitter buffer holds at most 64 of them (copies of at most one
// datagram each) and restarts rather than waits on timestamps that jump,
// and nothing it keeps grows with what the peer sends (FuzzPlayout).
//
// Only agent/sip (call control) imports this package. It imports crypto/policy,
// hal/audio and its codec agent/media/g722, and nothing above it: never
// agent/sip, agent, agent/lockdown, cmd, board, test, diago or sipgo.
package media
