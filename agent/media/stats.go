package media

import "sync/atomic"

// Stats is a snapshot of a session's counters, for status output and tests.
// Byte counts are of datagrams as they cross the wire (SRTP, so a 20 ms
// G.711 packet counts 182 bytes with AES_CM_128_HMAC_SHA1_80, 188 with GCM).
type Stats struct {
	// Security is how the SRTP keys were agreed.
	Security Security `json:"security"`
	// Suite is the SDES crypto-suite name ("AEAD_AES_128_GCM") or the
	// DTLS-SRTP profile name ("SRTP_AEAD_AES_128_GCM"); "" before keys exist.
	Suite string `json:"suite"`
	// Codec is the negotiated audio codec, "" before negotiation.
	Codec string `json:"codec"`
	// SampleRate is the codec's audio rate in Hz (16000 for G.722, 8000
	// for G.711), 0 before negotiation.
	SampleRate int `json:"sample_rate"`
	// Direction is ours: sendrecv, sendonly (we hold), recvonly (we are held)
	// or inactive.
	Direction string `json:"direction"`

	PacketsSent     uint64 `json:"packets_sent"`
	BytesSent       uint64 `json:"bytes_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	BytesReceived   uint64 `json:"bytes_received"`

	// AuthFailures counts SRTP packets whose authentication tag did not
	// verify (forged, corrupted, or plaintext RTP); they were dropped.
	AuthFailures uint64 `json:"auth_failures"`
	// Replays counts SRTP packets dropped by the replay window.
	Replays uint64 `json:"replays"`

	RTCPSent     uint64 `json:"rtcp_sent"`
	RTCPReceived uint64 `json:"rtcp_received"`
	// RTCPDropped counts SRTCP packets that failed authentication or the
	// replay window, plaintext RTCP among them (baresip sends some).
	RTCPDropped uint64 `json:"rtcp_dropped"`

	// ForeignDropped counts datagrams from an address the peer's SDP does
	// not name.
	ForeignDropped uint64 `json:"foreign_dropped"`
	// EarlyDropped counts RTP and RTCP that arrived before keys existed.
	EarlyDropped uint64 `json:"early_dropped"`
	// Malformed counts datagrams that were neither DTLS nor valid RTP/RTCP,
	// or carried a payload type that was not negotiated.
	Malformed uint64 `json:"malformed"`
	// LateDropped counts audio packets that arrived after their turn in the
	// jitter buffer, or twice.
	LateDropped uint64 `json:"late_dropped"`
	// PacketsLost is RFC 3550 §A.3's cumulative loss: packets the sequence
	// numbers say were sent that never arrived.
	PacketsLost uint64 `json:"packets_lost"`
	// JitterMS is RFC 3550 §A.8's interarrival jitter of the received
	// stream, in milliseconds.
	JitterMS float64 `json:"jitter_ms"`
	// PlayoutDelayMS is how long the jitter buffer holds audio beyond the
	// fastest packet of the last 2.5 s, at the last playout tick; the
	// buffer steers it to PlayoutTargetMS, which follows the jitter.
	PlayoutDelayMS  float64 `json:"playout_delay_ms"`
	PlayoutTargetMS float64 `json:"playout_target_ms"`
	// ConcealedFrames counts 20 ms frames played wholly or partly from
	// packet-loss concealment (a lost or late packet, a stretch).
	ConcealedFrames uint64 `json:"concealed_frames"`
	// Stretched and Compressed count frames the jitter buffer inserted
	// or dropped to move the playout delay to its target.
	Stretched  uint64 `json:"stretched"`
	Compressed uint64 `json:"compressed"`
	// JitterBufferOverflow counts packets refused because the buffer was
	// full (a peer sending faster than real time).
	JitterBufferOverflow uint64 `json:"jitter_buffer_overflow"`
	// StreamResets counts times the buffer started afresh: a new SSRC, a
	// timestamp jump, or a run of late packets.
	StreamResets uint64 `json:"stream_resets"`

	// SourceDropped counts 20 ms frames of microphone audio thrown away
	// because they had waited too long to be sent: what the device queued
	// while the call rang or was on hold, and a frame now and then when
	// the device's clock runs behind ours.
	SourceDropped uint64 `json:"source_dropped"`
	// SinkDropped counts quiet 20 ms frames left out of playback because the
	// sound device's queue stayed over three frames for a second: its clock
	// runs slower than ours.
	SinkDropped uint64 `json:"sink_dropped"`

	// Muted says the microphone is muted: silence is sent in its place.
	Muted bool `json:"muted"`
	// SendLevel is the level of the audio sent over the last second (after
	// mute: silence while muted), RecvLevel of the audio played.
	SendLevel Level `json:"send_level"`
	RecvLevel Level `json:"recv_level"`

	DTMFSent     uint64 `json:"dtmf_sent"`
	DTMFReceived uint64 `json:"dtmf_received"`
}

// counters are the live values behind Stats; every field is atomic so the
// socket loops never take a lock to count.
type counters struct {
	packetsSent, bytesSent         atomic.Uint64
	packetsReceived, bytesReceived atomic.Uint64
	authFailures, replays          atomic.Uint64
	rtcpSent, rtcpReceived         atomic.Uint64
	rtcpDropped                    atomic.Uint64
	foreignDropped, earlyDropped   atomic.Uint64
	malformed                      atomic.Uint64
	concealed, sourceDropped       atomic.Uint64
	sinkDropped                    atomic.Uint64
	dtmfSent, dtmfReceived         atomic.Uint64
	// dtlsQueued counts DTLS datagrams handed to a DTLS association; a test
	// uses it to see a ClientHello that came before the SDP answer.
	dtlsQueued atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsSent:     c.packetsSent.Load(),
		BytesSent:       c.bytesSent.Load(),
		PacketsReceived: c.packetsReceived.Load(),
		BytesReceived:   c.bytesReceived.Load(),
		AuthFailures:    c.authFailures.Load(),
		Replays:         c.replays.Load(),
		RTCPSent:        c.rtcpSent.Load(),
		RTCPReceived:    c.rtcpReceived.Load(),
		RTCPDropped:     c.rtcpDropped.Load(),
		ForeignDropped:  c.foreignDropped.Load(),
		EarlyDropped:    c.earlyDropped.Load(),
		Malformed:       c.malformed.Load(),
		ConcealedFrames: c.concealed.Load(),
		SourceDropped:   c.sourceDropped.Load(),
		SinkDropped:     c.sinkDropped.Load(),
		DTMFSent:        c.dtmfSent.Load(),
		DTMFReceived:    c.dtmfReceived.Load(),
	}
}
