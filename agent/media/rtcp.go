package media

import (
	"time"

	"github.com/pion/rtcp"
)

// rtcpInterval is how often we send a sender report. RFC 3550 §6.2 gives
// 5 s as the minimum interval for a two-party session.
const rtcpInterval = 5 * time.Second

// ntpTime converts t to the 64-bit NTP timestamp of RFC 3550 §4.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// senderReport builds the compound packet of RFC 3550 §6.1: SR, then SDES
// with our CNAME, then BYE when leaving.
func senderReport(ssrc, rtpTime, packets, octets uint32, cname string, bye bool) ([]byte, error) {
	pkts := []rtcp.Packet{
		&rtcp.SenderReport{
			SSRC:        ssrc,
			NTPTime:     ntpTime(time.Now()),
			RTPTime:     rtpTime,
			PacketCount: packets,
			OctetCount:  octets,
		},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
			Source: ssrc,
			Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: cname}},
		}}},
	}
	if bye {
		pkts = append(pkts, &rtcp.Goodbye{Sources: []uint32{ssrc}})
	}
	return rtcp.Marshal(pkts)
}
