package g722

// Stream constants for G.722 over RTP.
//
// One G.722 octet carries two 16 kHz samples; its bits are, most significant
// first (G.722 §1.4.4, the 64 kbit/s multiplexer):
//
//	  7    6    5    4    3    2    1    0
//	+----+----+----+----+----+----+----+----+
//	| IH1  IH2| IL1  IL2  IL3  IL4  IL5  IL6|
//	+----+----+----+----+----+----+----+----+
//	 upper band (2 bits) lower band (6 bits)
const (
	// SampleRate is the audio sampling rate in Hz.
	SampleRate = 16000

	// RTPClockRate is the RTP timestamp rate in Hz. RFC 3551 §4.5.2: even
	// though G.722 samples at 16,000 Hz, its RTP clock rate is 8,000 Hz
	// because RFC 1890 assigned that value in error and it must stay
	// unchanged for backward compatibility. An RTP timestamp therefore
	// advances by one per octet, half a tick per sample.
	RTPClockRate = 8000

	// FrameSamples20ms is the number of samples in a 20 ms frame; such a
	// frame encodes to FrameSamples20ms/2 = 160 octets.
	FrameSamples20ms = 320

	// PayloadType is G.722's static RTP payload type (RFC 3551 §6,
	// Table 4).
	PayloadType = 9
)
