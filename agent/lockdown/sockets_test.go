package lockdown

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// hexAddr renders an address the way /proc/net prints it on this machine:
// each 32-bit word of the network-order bytes as a host-order number.
func hexAddr(a netip.Addr) string {
	b := a.AsSlice()
	var s string
	for i := 0; i < len(b); i += 4 {
		s += fmt.Sprintf("%08X", binary.NativeEndian.Uint32(b[i:]))
	}
	return s
}

func procLine(i int, local netip.AddrPort, remote netip.AddrPort, st string, inode int) string {
	return fmt.Sprintf("%4d: %s:%04X %s:%04X %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0",
		i, hexAddr(local.Addr()), local.Port(), hexAddr(remote.Addr()), remote.Port(), st, inode)
}

func TestParseProcNet(t *testing.T) {
	ap := netip.MustParseAddrPort
	head := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tcp := head + strings.Join([]string{
		procLine(0, ap("127.0.0.1:5061"), ap("0.0.0.0:0"), "0A", 100),
		procLine(1, ap("10.0.0.1:5061"), ap("10.0.0.2:40000"), "01", 101), // established
		procLine(2, ap("0.0.0.0:2323"), ap("0.0.0.0:0"), "0A", 102),
	}, "\n") + "\n"
	got, err := parseProcNet(strings.NewReader(tcp), TCP)
	want := []Socket{
		{Proto: TCP, Addr: ap("127.0.0.1:5061"), Inode: 100},
		{Proto: TCP, Addr: ap("0.0.0.0:2323"), Inode: 102},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseProcNet(tcp) = %+v, %v, want %+v", got, err, want)
	}

	udp6 := head + strings.Join([]string{
		procLine(0, ap("[::]:6969"), ap("[::]:0"), "07", 200),
		procLine(1, ap("[2001:db8::1]:16384"), ap("[2001:db8::2]:4000"), "01", 201), // connected
		procLine(2, ap("[::ffff:10.0.0.1]:5060"), ap("[::]:0"), "07", 202),
	}, "\n") + "\n"
	got, err = parseProcNet(strings.NewReader(udp6), UDP)
	want = []Socket{
		{Proto: UDP, Addr: ap("[::]:6969"), Inode: 200},
		{Proto: UDP, Addr: ap("10.0.0.1:5060"), Inode: 202},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseProcNet(udp6) = %+v, %v, want %+v", got, err, want)
	}

	for _, bad := range []string{
		head + "   0: 0100007G:13C4 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
		head + "   0: 0100007F 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
		head + "   0: 0100007F:13C4 00000000:0000 0A 0:0 0:0 0 0 0 x\n",
		head + "   0: 01007F:13C4 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
	} {
		if got, err := parseProcNet(strings.NewReader(bad), TCP); err == nil {
			t.Errorf("parseProcNet(%q) = %v, want an error", bad, got)
		}
	}
}
