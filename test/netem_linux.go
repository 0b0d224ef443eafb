package test

// A network emulator for UDP on one interface: the kernel's netem qdisc
// does this, but the kernels these tests run on (the cloud VM's among them)
// are built without sch_netem, and tc then answers "Specified qdisc kind is
// unknown". What they do have is NFQUEUE: netfilter hands each UDP packet
// crossing the interface, both ways, to this process over nfnetlink_queue
// (the kernel's own queue, the same packets netem would see), which holds
// it for delay ± jitter (uniform, like netem's default distribution) and
// then accepts it, or drops it with probability loss. Verdicts are given
// in the order their timers fire, so packets overtake one another exactly
// as netem reorders packets whose jitter exceeds their spacing.
//
// Wire format (include/uapi/linux/netfilter/nfnetlink_queue.h): every
// message is a netlink header, a 4-byte nfgenmsg {family, version, queue
// number (big endian)}, then attributes in network byte order:
//
//	config:  NFQA_CFG_CMD {u8 cmd, u8 pad, be16 pf}, NFQA_CFG_PARAMS {be32 range, u8 mode},
//	         NFQA_CFG_QUEUE_MAXLEN be32
//	packet:  NFQA_PACKET_HDR {be32 id, be16 hw_protocol, u8 hook}, ...
//	verdict: NFQA_VERDICT_HDR {be32 verdict, be32 id}

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	nfnlSubsysQueue   = 3
	nfqnlMsgPacket    = 0
	nfqnlMsgVerdict   = 1
	nfqnlMsgConfig    = 2
	nfqaPacketHdr     = 1
	nfqaVerdictHdr    = 2
	nfqaCfgCmd        = 1
	nfqaCfgParams     = 2
	nfqaCfgQueueMax   = 3
	nfqnlCfgCmdBind   = 1
	nfqnlCopyMeta     = 1
	nfDrop            = 0
	nfAccept          = 1
	netemQueueMaxLen  = 8192
	netemMaxHeld      = 4096
	netemReadDeadline = 200 * time.Millisecond
)

// NetemSpec describes the impairment: each packet is held Delay ± Jitter
// (uniformly distributed, never below zero) or, with probability Loss,
// dropped. Seed makes a run repeatable.
type NetemSpec struct {
	Delay, Jitter time.Duration
	Loss          float64
	Seed          uint64
}

func (s NetemSpec) String() string {
	return fmt.Sprintf("delay %v ± %v, loss %.1f %%", s.Delay, s.Jitter, 100*s.Loss)
}

// Netem is a running emulator; see StartNetem.
type Netem struct {
	Spec NetemSpec
	conn *netlink.Conn
	q    uint16

	mu   sync.Mutex // guards rng and serialises verdicts
	rng  *rand.Rand
	held atomic.Int64
	done chan struct{}
	wg   sync.WaitGroup

	// Counters: packets seen, dropped, and verdicts that failed.
	Seen, Dropped, Failed atomic.Uint64
}

var netemQueues atomic.Uint32

// StartNetem impairs the IPv4 UDP packets that cross iface, both ways, by
// spec, until the test ends: it binds an nfnetlink queue of its own, adds
// iptables rules (in the mangle table, through iptables-nft) that queue
// those packets to it, with --queue-bypass so that packets pass unharmed if
// the emulator is gone, and removes both. The rules use the xtables NFQUEUE
// target because these kernels lack nftables' own queue expression
// (CONFIG_NFT_QUEUE) but have the target (CONFIG_NETFILTER_XT_TARGET_NFQUEUE),
// which iptables-nft reaches through nft's compat expression. It needs the
// private namespace of RunInNetns and iptables-nft (Debian's iptables).
func StartNetem(t testing.TB, iface string, spec NetemSpec) *Netem {
	t.Helper()
	requireNetns(t)
	if spec.Delay < 0 || spec.Jitter < 0 || spec.Loss < 0 || spec.Loss > 1 {
		t.Fatalf("StartNetem: bad spec %+v", spec)
	}
	q := uint16(100 + netemQueues.Add(1))
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		missing(t, "nfnetlink: %v", err)
	}
	n := &Netem{Spec: spec, conn: conn, q: q, rng: rand.New(rand.NewPCG(spec.Seed, 0x6e6574656d)), done: make(chan struct{})}
	if err := n.configure(); err != nil {
		conn.Close()
		missing(t, "nfnetlink_queue %d: %v", q, err)
	}
	chain := fmt.Sprintf("HPNETEM%d", q)
	ipt := requireBinary(t, "iptables-nft")
	run := func(args ...string) error {
		out, err := exec.Command(ipt, append([]string{"-w", "-t", "mangle"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables-nft %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"-N", chain},
		{"-A", chain, "-p", "udp", "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(q)), "--queue-bypass"},
		{"-A", "PREROUTING", "-i", iface, "-j", chain},
		{"-A", "POSTROUTING", "-o", iface, "-j", chain},
	} {
		if err := run(args...); err != nil {
			conn.Close()
			t.Fatalf("StartNetem: %v", err)
		}
	}
	n.wg.Add(1)
	go n.run()
	t.Cleanup(func() {
		for _, args := range [][]string{
			{"-D", "PREROUTING", "-i", iface, "-j", chain},
			{"-D", "POSTROUTING", "-o", iface, "-j", chain},
			{"-F", chain},
			{"-X", chain},
		} {
			if err := run(args...); err != nil {
				t.Errorf("StartNetem cleanup: %v", err)
			}
		}
		close(n.done)
		n.wg.Wait()
		conn.Close()
		t.Logf("netem on %s (%v): %d packets, %d dropped, %d verdicts failed", iface, spec, n.Seen.Load(), n.Dropped.Load(), n.Failed.Load())
	})
	return n
}

// configure binds the queue and asks for metadata only: the packet id is
// all a verdict needs.
func (n *Netem) configure() error {
	cmd := netlink.NewAttributeEncoder()
	cmd.ByteOrder = binary.BigEndian
	cmd.Bytes(nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0})
	if err := n.request(nfqnlMsgConfig, cmd); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	params := netlink.NewAttributeEncoder()
	params.ByteOrder = binary.BigEndian
	params.Bytes(nfqaCfgParams, []byte{0, 0, 0, 0, nfqnlCopyMeta})
	params.Uint32(nfqaCfgQueueMax, netemQueueMaxLen)
	if err := n.request(nfqnlMsgConfig, params); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	return nil
}

func (n *Netem) message(typ int, ae *netlink.AttributeEncoder) (netlink.Message, error) {
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	hdr := []byte{unix.AF_UNSPEC, 0, byte(n.q >> 8), byte(n.q)}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | typ), Flags: netlink.Request},
		Data:   append(hdr, attrs...),
	}, nil
}

func (n *Netem) request(typ int, ae *netlink.AttributeEncoder) error {
	m, err := n.message(typ, ae)
	if err != nil {
		return err
	}
	m.Header.Flags |= netlink.Acknowledge
	_, err = n.conn.Execute(m)
	return err
}

// verdict accepts or drops packet id.
func (n *Netem) verdict(id uint32, v uint32) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], id)
	ae.Bytes(nfqaVerdictHdr, b)
	m, err := n.message(nfqnlMsgVerdict, ae)
	if err == nil {
		n.mu.Lock()
		_, err = n.conn.Send(m)
		n.mu.Unlock()
	}
	if err != nil {
		n.Failed.Add(1)
	}
}

// run receives queued packets and schedules their verdicts until done.
func (n *Netem) run() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		default:
		}
		if err := n.conn.SetReadDeadline(time.Now().Add(netemReadDeadline)); err != nil {
			return
		}
		msgs, err := n.conn.Receive()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case <-n.done:
				return
			default:
			}
			// ENOBUFS: the kernel dropped queue messages (and, with bypass
			// off, their packets). Count and go on.
			n.Failed.Add(1)
			continue
		}
		for _, m := range msgs {
			if int(m.Header.Type)&0xff != nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			id, ok := packetID(m.Data[4:])
			if !ok {
				continue
			}
			n.handle(id)
		}
	}
}

func packetID(attrs []byte) (uint32, bool) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return 0, false
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		if ad.Type() == nfqaPacketHdr {
			b := ad.Bytes()
			if len(b) < 4 {
				return 0, false
			}
			return binary.BigEndian.Uint32(b), true
		}
	}
	return 0, false
}

// handle decides one packet's fate.
func (n *Netem) handle(id uint32) {
	n.Seen.Add(1)
	n.mu.Lock()
	drop := n.rng.Float64() < n.Spec.Loss
	d := n.Spec.Delay
	if n.Spec.Jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(2*n.Spec.Jitter)+1)) - n.Spec.Jitter
	}
	n.mu.Unlock()
	if drop || n.held.Load() >= netemMaxHeld {
		n.Dropped.Add(1)
		n.verdict(id, nfDrop)
		return
	}
	if d <= 0 {
		n.verdict(id, nfAccept)
		return
	}
	n.held.Add(1)
	time.AfterFunc(d, func() {
		n.held.Add(-1)
		n.verdict(id, nfAccept)
	})
}
