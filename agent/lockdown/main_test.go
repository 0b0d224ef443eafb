package lockdown

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// rogueEnv makes the test binary a rogue listener instead of running
// tests: it listens on every "proto:addr" in the variable, prints "ready"
// and waits for its standard input to close.
const rogueEnv = "HARDPHONE_LOCKDOWN_ROGUE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(rogueEnv); spec != "" {
		os.Exit(rogue(spec))
	}
	test.RunInNetns(m)
}

func rogue(spec string) int {
	var keep []any
	for _, s := range strings.Split(spec, ",") {
		proto, addr, _ := strings.Cut(s, ":")
		var err error
		switch proto {
		case "tcp":
			var l net.Listener
			l, err = net.Listen("tcp", addr)
			keep = append(keep, l)
		case "udp":
			var c net.PacketConn
			c, err = net.ListenPacket("udp", addr)
			keep = append(keep, c)
		default:
			err = fmt.Errorf("bad spec %q", s)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "rogue:", err)
			return 2
		}
	}
	fmt.Println("ready")
	// Exits when the test closes our stdin (or dies).
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // any outcome means stop
	runtime.KeepAlive(keep)                           // the sockets live until exit
	return 0
}
