// Package g722 is a pure-Go ITU-T G.722 codec in its 64 kbit/s mode (mode 1):
// 16 kHz linear PCM split by a quadrature mirror filter into two 8 kHz
// sub-bands, the lower one coded with 6-bit ADPCM and the upper one with
// 2-bit ADPCM, one octet per pair of input samples.
//
// The arithmetic follows the fixed-point description of G.722 (the
// "computational details" of §5 and §6) so that a stream we encode decodes
// on any conforming peer to the same samples, and a stream from any
// conforming encoder decodes here to the samples that peer expects; the tests
// check both directions against Debian's ffmpeg byte for byte. The
// 56 and 48 kbit/s modes (auxiliary data in the low bits) are not offered:
// RTP payload type 9 is the 64 kbit/s mode.
//
// Threat: a hostile peer controls every octet that reaches Decoder.Decode.
// Every octet value is a valid codeword, the decoder does no allocation of
// its own beyond appending to the caller's slice, and all of its state is
// clamped by the algorithm itself (scale factors, predictor coefficients and
// outputs are saturated), so arbitrary input yields bounded audio and
// bounded state; the fuzz tests assert that.
//
// Only agent/media (the media pump and codec negotiation) imports this
// package. It imports the standard library only: never agent, agent/sip,
// cmd, board, hal or test.
package g722
