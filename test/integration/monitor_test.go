package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// The monitored phone of monitor_netns_test.go: alice as `hardphone run`
// with her events exported to rsyslog, her journal as `hardphone events`
// lists it, what the collector received, a legitimate call beside the
// attacks, and the counts of what went on the wire.

const (
	// monitorHost is the HOSTNAME the phone's syslog messages carry.
	monitorHost = "alice-phone"
	// plainListen is the phone's plain UDP listener; plainPeer the one
	// source it takes requests from (listen_peer).
	plainListen = "127.0.0.1:5092"
	plainPeer   = "127.0.0.1:5095"
)

// monitorPhone is alice as `hardphone run`, her identity key and SIP
// password in a credential store on a swtpm, her events exported to an
// rsyslog that requires her identity certificate.
type monitorPhone struct {
	e    *env
	rs   *test.Rsyslog
	path string
	cfg  *config.Config
	proc *agentProcess
	ctl  *control.Client
}

// startMonitorPhone writes alice's config with a plain UDP listener and
// [events] pointing at a fresh rsyslog, and starts the agent. extra is
// appended to the account table.
func startMonitorPhone(t *testing.T, e *env, extra string) *monitorPhone {
	t.Helper()
	rs := test.StartRsyslog(t, e.pki, "alice")
	events := fmt.Sprintf("\n[events]\nsyslog = %q\nsyslog_ca = %q\nsyslog_server_name = %q\nhostname = %q\n",
		rs.Addr, e.pki.CAFile, rs.ServerName, monitorHost)
	path := e.tpmPhoneConf(t, phoneConf{user: "alice",
		top:   fmt.Sprintf("listen = [\"udp:%s\"]\nlisten_peer = %q", plainListen, plainPeer),
		extra: extra + events})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &monitorPhone{e: e, rs: rs, path: path, cfg: cfg, ctl: control.NewClient(cfg.ControlSocket)}
	m.start(t)
	return m
}

// start runs the agent and waits until it is registered and answers on
// its control socket.
func (m *monitorPhone) start(t *testing.T) {
	t.Helper()
	m.proc = startAgentProcess(t, "--config", m.path)
	m.e.k.WaitRegistered(t, "alice", 15*time.Second)
	waitFor(t, 15*time.Second, func() bool {
		st, err := m.ctl.Status(context.Background())
		return err == nil && len(st.Accounts) == 1 && st.Accounts[0].Registered
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent log (tail) ---\n%s", tail(readFile(m.proc.log), 40))
		}
	})
}

// stop stops the agent by PID (SIGTERM: the recorder writes what it holds
// and every suppression summary it owes before the process exits).
func (m *monitorPhone) stop(t *testing.T) {
	t.Helper()
	if err := m.proc.stop(t); err != nil {
		t.Logf("agent exit: %v", err)
	}
}

// status is the agent's status through the control socket.
func (m *monitorPhone) status(t *testing.T) *control.Status {
	t.Helper()
	st, err := m.ctl.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// counters are alice's refusal counters.
func (m *monitorPhone) counters(t *testing.T) sip.Counters {
	t.Helper()
	return m.status(t).Accounts[0].Counters
}

// journalRecord is one line of `hardphone events --json`.
type journalRecord struct {
	Seq   uint64 `json:"seq"`
	Type  string `json:"type"`
	Hash  string `json:"hash"`
	Error string `json:"error"`
	Event *struct {
		Kind     string            `json:"kind"`
		Severity string            `json:"severity"`
		Account  string            `json:"account"`
		Peer     string            `json:"peer"`
		Detail   map[string]string `json:"detail"`
	} `json:"event"`
}

// journal lists the whole journal with `hardphone events --json`, a page
// at a time: through the agent when it runs, else from the state file.
func (m *monitorPhone) journal(t *testing.T) []journalRecord {
	t.Helper()
	hp := hardphoneBinary(t)
	var out []journalRecord
	from := uint64(0)
	for {
		b, err := exec.Command(hp, "events", "--config", m.path, "--json", "--from", strconv.FormatUint(from, 10)).Output()
		if err != nil {
			t.Fatalf("hardphone events --json --from %d: %v", from, err)
		}
		n := 0
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r journalRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("journal line %q: %v", sc.Text(), err)
			}
			if r.Error != "" {
				t.Fatalf("journal record %d damaged: %s", r.Seq, r.Error)
			}
			out = append(out, r)
			from = r.Seq + 1
			n++
		}
		if n == 0 {
			return out
		}
	}
}

// verify runs `hardphone events --verify`.
func (m *monitorPhone) verify(t *testing.T) {
	t.Helper()
	b, err := exec.Command(hardphoneBinary(t), "events", "--config", m.path, "--verify").CombinedOutput()
	if err != nil {
		t.Fatalf("hardphone events --verify: %v\n%s", err, b)
	}
}

// tally is, per kind, how many events the journal holds and how many
// events.suppressed summaries say were held back.
type tally map[string]*struct{ events, suppressed uint64 }

func tallyOf(t *testing.T, recs []journalRecord) tally {
	t.Helper()
	out := tally{}
	get := func(k string) *struct{ events, suppressed uint64 } {
		if out[k] == nil {
			out[k] = &struct{ events, suppressed uint64 }{}
		}
		return out[k]
	}
	for _, r := range recs {
		if r.Event == nil {
			continue
		}
		if r.Event.Kind != "events.suppressed" {
			get(r.Event.Kind).events++
			continue
		}
		n, err := strconv.ParseUint(r.Event.Detail["count"], 10, 64)
		if err != nil {
			t.Fatalf("events.suppressed record %d: count %q: %v", r.Seq, r.Event.Detail["count"], err)
		}
		get(r.Event.Detail["kind"]).suppressed += n
	}
	return out
}

// total is events plus suppressed of the kinds.
func (ta tally) total(kinds ...string) uint64 {
	var n uint64
	for _, k := range kinds {
		if c := ta[k]; c != nil {
			n += c.events + c.suppressed
		}
	}
	return n
}

func (ta tally) String() string {
	var b strings.Builder
	for k, c := range ta {
		fmt.Fprintf(&b, "%s: %d journaled + %d suppressed; ", k, c.events, c.suppressed)
	}
	return b.String()
}

// waitAccounted waits until every refusal the counters name is in the
// journal, as an event or in a suppression summary (summaries come when a
// kind's limit lets up, on the recorder's tick), and returns the journal.
func (m *monitorPhone) waitAccounted(t *testing.T, timeout time.Duration) ([]journalRecord, tally, sip.Counters) {
	t.Helper()
	var (
		recs []journalRecord
		ta   tally
		c    sip.Counters
	)
	deadline := time.Now().Add(timeout)
	for {
		c = m.counters(t)
		recs = m.journal(t)
		ta = tallyOf(t, recs)
		if ta.total("sip.foreign_source", "sip.scanner") == uint64(c.ForeignSource) &&
			ta.total("sip.invite_flood") == uint64(c.INVITEFlood) && ta.total("sip.call_cap") == uint64(c.CallCap) {
			return recs, ta, c
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal does not account for the refusals within %v:\ncounters: foreign_source %d, invite_flood %d, call_cap %d\njournal: %s",
				timeout, c.ForeignSource, c.INVITEFlood, c.CallCap, ta)
		}
		time.Sleep(time.Second)
	}
}

// syslogLine is what the collector's line says of one record.
type syslogLine struct {
	seq             uint64
	host, app, kind string
	chain, hash     string
}

var sdChainRE = regexp.MustCompile(`\[chain@32473 seq="(\d+)" chain="([0-9a-f]+)" hash="([0-9a-f]{64})"`)

// parseSyslogLine reads rsyslog's RFC 5424 rendering of one message:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG.
func parseSyslogLine(t *testing.T, l string) syslogLine {
	t.Helper()
	f := strings.SplitN(l, " ", 7)
	if len(f) < 7 || !strings.HasPrefix(f[0], "<") || !strings.HasSuffix(f[0], ">1") {
		t.Fatalf("collector line is not RFC 5424: %q", l)
	}
	m := sdChainRE.FindStringSubmatch(f[6])
	if m == nil {
		t.Fatalf("collector line has no chain structured data: %q", l)
	}
	seq, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatalf("collector line %q: seq: %v", l, err)
	}
	return syslogLine{seq: seq, host: f[2], app: f[3], kind: f[5], chain: m[2], hash: m[3]}
}

// checkCollector waits until rsyslog holds every journal record, then
// checks it got them in journal order (a record may come again only as a
// resend after a reconnect, which starts at or before the first record
// not yet acknowledged), each with the journal's hash and kind, all from
// one chain and from the phone. It returns how many lines were resends.
func (m *monitorPhone) checkCollector(t *testing.T, recs []journalRecord, timeout time.Duration) (resent int) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatalf("empty journal")
	}
	bySeq := make(map[uint64]journalRecord, len(recs))
	for _, r := range recs {
		bySeq[r.Seq] = r
	}
	first, head := recs[0].Seq, recs[len(recs)-1].Seq
	lines := m.rs.WaitLines(t, timeout, func(lines []string) bool {
		seen := make(map[uint64]bool)
		for _, l := range lines {
			seen[parseSyslogLine(t, l).seq] = true
		}
		for s := first; s <= head; s++ {
			if !seen[s] {
				return false
			}
		}
		return true
	})
	var chain string
	high := first - 1
	seen := make(map[uint64]bool)
	for i, l := range lines {
		p := parseSyslogLine(t, l)
		if p.host != monitorHost || p.app != "hardphone" {
			t.Fatalf("collector line %d from host %q app %q, want %q hardphone", i, p.host, p.app, monitorHost)
		}
		if chain == "" {
			chain = p.chain
		} else if p.chain != chain {
			t.Fatalf("collector line %d of chain %s, earlier lines of %s", i, p.chain, chain)
		}
		if p.seq > high+1 {
			t.Fatalf("collector got record %d (line %d) before record %d: out of order or a gap", p.seq, i, high+1)
		}
		if seen[p.seq] {
			resent++
		}
		seen[p.seq], high = true, max(high, p.seq)
		r, ok := bySeq[p.seq]
		if !ok {
			continue // newer than the journal listing
		}
		if p.hash != r.Hash {
			t.Fatalf("record %d: collector has hash %s, journal %s", p.seq, p.hash, r.Hash)
		}
		want := "events." + r.Type
		if r.Event != nil {
			want = r.Event.Kind
		}
		if p.kind != want {
			t.Fatalf("record %d: collector MSGID %q, journal %q", p.seq, p.kind, want)
		}
	}
	return resent
}

// legitCall is bob (baresip, SDES-SRTP, playing a tone) calling alice
// through the registrar; alice answers by herself.
type legitCall struct {
	b *test.Baresip
	m *monitorPhone
}

func startLegitCall(t *testing.T, m *monitorPhone) *legitCall {
	t.Helper()
	tone := filepath.Join(t.TempDir(), "bob.wav")
	// Longer than the test: baresip's call goes quiet when its file ends.
	test.WriteToneWAV(t, tone, toneTheirs, 5*time.Minute, 8000)
	_, _, combined := m.e.pki.Client("bob")
	b := test.StartBaresip(t, test.BaresipKamailio(m.e.k, "bob"), test.BaresipCertificate(combined),
		test.BaresipMediaEnc("srtp-mand"), test.BaresipAudioSource(tone))
	b.WaitRegistered(t, 10*time.Second)
	b.Dial(t, "sip:alice@"+m.e.k.IP())
	b.WaitEvent(t, "CALL_ESTABLISHED", 15*time.Second)
	c := &legitCall{b: b, m: m}
	c.waitMedia(t, 50)
	return c
}

// call is the call's status on the phone.
func (c *legitCall) call(t *testing.T) sip.CallStatus {
	t.Helper()
	calls := c.m.status(t).Accounts[0].Calls
	for _, cs := range calls {
		if strings.Contains(cs.Peer, "bob") {
			return cs
		}
	}
	t.Fatalf("the phone has no call with bob: %+v", calls)
	return sip.CallStatus{}
}

// waitMedia waits until the call carried n more authenticated SRTP packets
// each way than it had, and returns its status then.
func (c *legitCall) waitMedia(t *testing.T, n uint64) sip.CallStatus {
	t.Helper()
	before := c.call(t)
	var cs sip.CallStatus
	waitFor(t, 20*time.Second, func() bool {
		cs = c.call(t)
		return cs.Media.PacketsReceived >= before.Media.PacketsReceived+n && cs.Media.PacketsSent >= before.Media.PacketsSent+n
	})
	if cs.State != "established" || cs.Media.Suite == "" {
		t.Fatalf("legitimate call %+v, want established with an SRTP suite", cs)
	}
	return cs
}

// hangup ends the call from bob's side.
func (c *legitCall) hangup(t *testing.T) {
	t.Helper()
	c.b.Hangup(t)
	c.b.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
}

// wireProbes counts the distinct SIP requests a capture saw arrive at the
// plain listener from anyone but its peer: by source, method and Via
// branch (a retransmission is one request). ACKs are counted apart: one
// that matches the transaction of the refusal it acknowledges is absorbed
// there and is not a new request to the phone.
type wireProbes struct {
	requests, acks, scanners int
	// resent and resentScanner count retransmissions (a request seen
	// before, by source, method and branch). The phone's refusal of a
	// foreign source is stateless, so it counts a retransmission again:
	// a loaded machine answers late and the sender retransmits.
	resent, resentScanner int
	// authorized counts requests that carried digest credentials.
	authorized int
}

func countWireProbes(pkts []test.CapturedPacket) wireProbes {
	listen := netip.MustParseAddrPort(plainListen)
	peer := netip.MustParseAddrPort(plainPeer)
	type key struct{ src, method, branch string }
	seen := map[key]bool{}
	var w wireProbes
	for _, p := range pkts {
		if p.Proto != "udp" || p.Dst != listen.Addr() || p.DstPort != listen.Port() ||
			(p.Src == peer.Addr() && p.SrcPort == peer.Port()) {
			continue
		}
		msg := string(p.Payload)
		method, _, ok := strings.Cut(msg, " ")
		if !ok || strings.HasPrefix(msg, "SIP/2.0") {
			continue
		}
		k := key{fmt.Sprintf("%v:%d", p.Src, p.SrcPort), method, headerParam(msg, "Via", "branch")}
		if seen[k] {
			if method != "ACK" {
				w.resent++
				if ua := header(msg, "User-Agent"); strings.Contains(strings.ToLower(ua), "friendly-scanner") {
					w.resentScanner++
				}
			}
			continue
		}
		seen[k] = true
		if method == "ACK" {
			w.acks++
			continue
		}
		w.requests++
		if header(msg, "Authorization") != "" || header(msg, "Proxy-Authorization") != "" {
			w.authorized++
		}
		if ua := header(msg, "User-Agent"); strings.Contains(strings.ToLower(ua), "friendly-scanner") {
			w.scanners++
		}
	}
	return w
}

// header returns the first value of a SIP header (full or compact name).
func header(msg, name string) string {
	compact := map[string]string{"via": "v", "user-agent": ""}[strings.ToLower(name)]
	for _, l := range strings.Split(msg, "\r\n") {
		n, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n = strings.TrimSpace(n)
		if strings.EqualFold(n, name) || (compact != "" && strings.EqualFold(n, compact)) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func headerParam(msg, name, param string) string {
	for _, p := range strings.Split(header(msg, name), ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, param) {
			return v
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// probeFrom sends one SIPVicious-style OPTIONS ("friendly-scanner") to the
// plain listener from ip and waits for the phone's 403.
func probeFrom(t *testing.T, ip string) {
	t.Helper()
	c := dialFrom(t, "udp", net.JoinHostPort(ip, "0"), plainListen)
	defer c.Close()
	la := c.LocalAddr().String()
	msg := "OPTIONS sip:100@" + plainListen + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + la + ";branch=z9hG4bK-" + randHex(8) + ";rport\r\n" +
		"From: \"sipvicious\"<sip:100@1.1.1.1>;tag=" + randHex(4) + "\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\n" +
		"Call-ID: " + randHex(8) + "\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: friendly-scanner\r\n" +
		"Contact: <sip:100@" + la + ">\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 403") {
		t.Fatalf("probe from %s answered %q, %v; want 403", ip, buf[:n], err)
	}
}

// probes sends one probe from each of n loopback addresses 127.0.<net>.1
// up: each source its own peer for the rate limit.
func probes(t *testing.T, subnet, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		probeFrom(t, fmt.Sprintf("127.0.%d.%d", subnet, i))
	}
}

// maxSeq is the highest record seq among the collector's lines.
func maxSeq(t *testing.T, lines []string) uint64 {
	t.Helper()
	var m uint64
	for _, l := range lines {
		m = max(m, parseSyslogLine(t, l).seq)
	}
	return m
}

// udpDrops is how many UDP datagrams the kernel dropped in the test's
// namespace (/proc/net/snmp is per namespace): receive buffer overflows,
// receive errors and send buffer overflows.
func udpDrops(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names, values []string
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, "Udp: "); ok {
			if names == nil {
				names = strings.Fields(f)
			} else {
				values = strings.Fields(f)
			}
		}
	}
	var n uint64
	for i, name := range names {
		switch name {
		case "InErrors", "RcvbufErrors", "SndbufErrors":
			if i < len(values) {
				v, err := strconv.ParseUint(values[i], 10, 64)
				if err != nil {
					t.Fatalf("/proc/net/snmp Udp %s %q: %v", name, values[i], err)
				}
				n += v
			}
		}
	}
	return n
}

// procStatus reads a /proc/PID/status field in kB.
func procStatus(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("agent pid %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", field, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// resourceSample is the agent's size at one moment.
type resourceSample struct {
	rssKB      uint64
	goroutines int
}

// sampleResources reads the agent's RSS and goroutines every 100 ms until
// stop is closed, and returns the peak of each.
func (m *monitorPhone) sampleResources(t *testing.T, stop <-chan struct{}) <-chan resourceSample {
	t.Helper()
	pid := m.proc.cmd.Process.Pid
	out := make(chan resourceSample, 1)
	go func() {
		var peak resourceSample
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
						n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
						peak.rssKB = max(peak.rssKB, n)
					}
				}
			}
			if st, err := m.ctl.Status(context.Background()); err == nil {
				peak.goroutines = max(peak.goroutines, st.Runtime.Goroutines)
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}
