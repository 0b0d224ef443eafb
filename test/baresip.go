package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	baresipReadyTimeout    = 10 * time.Second
	baresipRegisterTimeout = 10 * time.Second
	baresipModuleDir       = "/usr/lib/baresip/modules"
	// baresipRTPPorts is the size of each instance's RTP port range.
	baresipRTPPorts = 20
	// silenceSeconds is the length of the silence sent when there is no
	// audio source; aufile ends the call after it.
	silenceSeconds = 300
)

// Baresip is a baresip user agent started by StartBaresip and driven over
// its ctrl_tcp socket. It is stopped by PID when the test ends.
type Baresip struct {
	proc    *process
	o       baresipOptions
	dir     string
	sipPort int
	rtpLo   int
	ctrl    *baresipCtrl
}

type baresipOptions struct {
	user, password string
	registrar      string // host:port of the TLS registrar and outbound proxy
	domain         string // AoR domain; default: registrar host
	certificate    string // combined cert+key PEM, "" for none
	caFile         string
	mediaEnc       string
	audioCodecs    string
	answerMode     string
	audioSource    string // WAV file, "" for silence
	recordDir      string // "" for no recording
	register       bool
	waitRegistered bool
	ip             string
	modules        []string // extra modules (codecs, filters)
	player         string   // audio_player, "" for ALSA's null device
	jitterDelay    string   // jitter_buffer_delay, "" for the default
}

// BaresipOption configures StartBaresip.
type BaresipOption func(*baresipOptions) error

// BaresipKamailio points the account at k: user and its password from k's
// users, k's TLS address as registrar and outbound proxy, and a client
// certificate with CN=user from k's PKI.
func BaresipKamailio(k *Kamailio, user string) BaresipOption {
	return func(o *baresipOptions) error {
		if k == nil {
			return fmt.Errorf("nil Kamailio")
		}
		o.user, o.password = user, k.Password(user)
		o.registrar = k.Addr()
		_, _, combined := k.PKI().Client(user)
		o.certificate = combined
		o.caFile = k.PKI().CAFile
		return nil
	}
}

// BaresipUser sets the SIP user and its digest password.
func BaresipUser(user, password string) BaresipOption {
	return func(o *baresipOptions) error {
		if !sipToken(user) {
			return fmt.Errorf("user %q is not a plain SIP user token", user)
		}
		if strings.ContainsAny(password, ";\"\n\r") {
			return fmt.Errorf("password of %q contains ; \" or a newline", user)
		}
		o.user, o.password = user, password
		return nil
	}
}

// BaresipRegistrar sets the host:port of the TLS registrar, which is also
// the outbound proxy for every request.
func BaresipRegistrar(hostport string) BaresipOption {
	return func(o *baresipOptions) error {
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			return fmt.Errorf("registrar %q: %w", hostport, err)
		}
		o.registrar = hostport
		return nil
	}
}

// BaresipCertificate sets the client certificate: one PEM file holding the
// certificate and its key, as PKI.Client returns. "" sends none.
func BaresipCertificate(combinedPEM string) BaresipOption {
	return func(o *baresipOptions) error {
		o.certificate = combinedPEM
		return nil
	}
}

// BaresipCA sets sip_cafile. baresip 1.0 does not verify the server
// certificate with it anyway.
func BaresipCA(caFile string) BaresipOption {
	return func(o *baresipOptions) error {
		o.caFile = caFile
		return nil
	}
}

// BaresipMediaEnc sets the media encryption: "srtp-mand" (the default, SDES),
// "srtp", "srtp-mandf" or "dtls_srtp".
func BaresipMediaEnc(menc string) BaresipOption {
	return func(o *baresipOptions) error {
		switch menc {
		case "srtp", "srtp-mand", "srtp-mandf", "dtls_srtp":
		default:
			return fmt.Errorf("mediaenc %q, want srtp, srtp-mand, srtp-mandf or dtls_srtp", menc)
		}
		o.mediaEnc = menc
		return nil
	}
}

// BaresipAudioCodecs sets the account's audio_codecs; the default is
// PCMU,PCMA.
func BaresipAudioCodecs(codecs string) BaresipOption {
	return func(o *baresipOptions) error {
		o.audioCodecs = codecs
		return nil
	}
}

// BaresipAnswerMode sets answermode: "auto" (the default), "manual" or
// "early".
func BaresipAnswerMode(mode string) BaresipOption {
	return func(o *baresipOptions) error {
		switch mode {
		case "auto", "manual", "early":
		default:
			return fmt.Errorf("answermode %q, want auto, manual or early", mode)
		}
		o.answerMode = mode
		return nil
	}
}

// BaresipAudioSource makes baresip send the audio of a WAV file, mono at
// the codec's rate (8000 Hz for G.711, as WriteToneWAV writes by default;
// 16000 Hz for G.722): baresip 1.0 refuses any other. baresip's aufile hangs up the call when the
// file ends, so make it outlast the call. Without this option baresip sends
// 5 minutes of silence.
func BaresipAudioSource(wav string) BaresipOption {
	return func(o *baresipOptions) error {
		if _, err := os.Stat(wav); err != nil {
			return fmt.Errorf("audio source: %w", err)
		}
		o.audioSource = wav
		return nil
	}
}

// BaresipRecordDir makes the sndfile module record each call's audio into
// dir; see RecordedWAVs.
func BaresipRecordDir(dir string) BaresipOption {
	return func(o *baresipOptions) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("record dir: %w", err)
		}
		o.recordDir = dir
		return nil
	}
}

// BaresipModule loads an extra module from baresip-core, such as "g722"
// (then name G722 in BaresipAudioCodecs) or "plc" (packet-loss
// concealment, an audio filter on the receive path).
func BaresipModule(name string) BaresipOption {
	return func(o *baresipOptions) error {
		if !sipToken(name) || strings.ContainsAny(name, "./") {
			return fmt.Errorf("module name %q", name)
		}
		if _, err := os.Stat(filepath.Join(baresipModuleDir, name+".so")); err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		o.modules = append(o.modules, name)
		return nil
	}
}

// BaresipAudioPlayer sets audio_player, for instance "aubridge,x": the
// default, ALSA's null device, keeps a core busy (it takes frames as fast
// as they come), which matters where baresip's CPU is measured.
func BaresipAudioPlayer(spec string) BaresipOption {
	return func(o *baresipOptions) error {
		mod, _, ok := strings.Cut(spec, ",")
		if !ok || !sipToken(mod) || strings.ContainsAny(spec, "\n\r") {
			return fmt.Errorf("audio player %q, want MODULE,DEVICE", spec)
		}
		if mod != "alsa" {
			o.modules = append(o.modules, mod)
		}
		o.player = spec
		return nil
	}
}

// BaresipJitterBuffer sets jitter_buffer_delay, the range of frames its
// jitter buffer holds ("min-max"; the default here is 1-10).
func BaresipJitterBuffer(frames string) BaresipOption {
	return func(o *baresipOptions) error {
		var lo, hi int
		if n, err := fmt.Sscanf(frames, "%d-%d", &lo, &hi); n != 2 || err != nil || lo < 0 || hi < lo || hi > 100 {
			return fmt.Errorf("jitter buffer %q, want MIN-MAX frames", frames)
		}
		o.jitterDelay = frames
		return nil
	}
}

// BaresipNoRegister makes the account never register (regint=0).
func BaresipNoRegister() BaresipOption {
	return func(o *baresipOptions) error {
		o.register = false
		return nil
	}
}

// BaresipNoRegisterWait makes StartBaresip return once ctrl_tcp answers,
// without waiting for the registration to succeed; for tests that expect it
// to fail.
func BaresipNoRegisterWait() BaresipOption {
	return func(o *baresipOptions) error {
		o.waitRegistered = false
		return nil
	}
}

// StartBaresip writes a config dir, starts baresip, waits until its ctrl_tcp
// socket answers, creates the account with uanew and, unless told otherwise,
// waits until it has registered. Every event from the account's first
// REGISTER on is seen by WaitEvent.
func StartBaresip(t testing.TB, opts ...BaresipOption) *Baresip {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, "baresip")
	if _, err := os.Stat(filepath.Join(baresipModuleDir, "ctrl_tcp.so")); err != nil {
		missing(t, "baresip modules: %v", err)
	}
	o := baresipOptions{
		mediaEnc:       "srtp-mand",
		audioCodecs:    "PCMU,PCMA",
		answerMode:     "auto",
		register:       true,
		waitRegistered: true,
		ip:             "127.0.0.1",
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("StartBaresip: %v", err)
		}
	}
	if o.user == "" || o.registrar == "" {
		t.Fatalf("StartBaresip: need a user and a registrar (BaresipKamailio or BaresipUser+BaresipRegistrar)")
	}
	if o.domain == "" {
		o.domain, _, _ = net.SplitHostPort(o.registrar)
	}
	b := &Baresip{
		o:   o,
		dir: t.TempDir(),
		// sip_listen P takes UDP and TCP P and TLS P+1.
		sipPort: freePort(t, o.ip, 2),
		// baresip takes even RTP ports (RTCP on the next odd one): start the
		// range on an even port so every port it may bind is inside it.
		rtpLo: evenUp(freePort(t, o.ip, baresipRTPPorts+1)),
	}
	ctrlPort := freePort(t, o.ip, 1)
	b.writeConfig(t, ctrlPort)

	b.proc = startProcess(t, b.LogPath(), b.dir, bin, "-f", b.dir)
	b.proc.nudge = true
	ctrlAddr := net.JoinHostPort(o.ip, strconv.Itoa(ctrlPort))
	var conn net.Conn
	err := b.proc.waitFor(baresipReadyTimeout, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", ctrlAddr, time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("StartBaresip(%s): ctrl_tcp %s: %v\n--- log ---\n%s", o.user, ctrlAddr, err, b.proc.logTail(8000))
	}
	b.ctrl = newBaresipCtrl(conn)
	t.Cleanup(b.ctrl.close)
	// An account in the accounts file would register before ctrl_tcp is
	// connected, and a fast REGISTER_FAIL would go unseen.
	if resp := b.Command(t, "uanew", b.accountLine()); !resp.OK {
		t.Fatalf("StartBaresip(%s): uanew: %s", o.user, resp.Data)
	}
	t.Logf("baresip %s pid %d sip %s:%d rtp %d-%d (dir %s)", o.user, b.PID(), o.ip, b.sipPort, b.rtpLo, b.rtpLo+baresipRTPPorts-1, b.dir)
	if o.register && o.waitRegistered {
		b.WaitRegistered(t, baresipRegisterTimeout)
	}
	return b
}

func (b *Baresip) writeConfig(t testing.TB, ctrlPort int) {
	t.Helper()
	o := b.o
	source := o.audioSource
	if source == "" {
		// aufile hangs up the call at the end of its file ("end of
		// file"), ausine stalls the audio start here, and ALSA's null
		// capture spins, recording hundreds of MB: send a long silence.
		source = filepath.Join(b.dir, "silence.wav")
		// aufile plays only a file at the codec's rate (baresip 1.0 does
		// not convert): 16 kHz when the account's first codec is G.722.
		rate := 8000
		if strings.HasPrefix(strings.ToUpper(o.audioCodecs), "G722") {
			rate = 16000
		}
		if err := os.WriteFile(source, encodeWAV(make([]int16, rate*silenceSeconds), rate), 0o644); err != nil {
			t.Fatalf("StartBaresip: %v", err)
		}
	}
	var c strings.Builder
	line := func(k, v string) { fmt.Fprintf(&c, "%-20s %s\n", k, v) }
	c.WriteString("# Generated by github.com/hardphone/hardphone/test; do not edit.\n")
	line("poll_method", "epoll")
	line("sip_listen", net.JoinHostPort(o.ip, strconv.Itoa(b.sipPort)))
	if o.certificate != "" {
		line("sip_certificate", o.certificate)
	}
	if o.caFile != "" {
		line("sip_cafile", o.caFile)
	}
	line("call_local_timeout", "120")
	line("call_max_calls", "4")
	// No sound card here: ALSA's null device plays and captures nothing.
	player := o.player
	if player == "" {
		player = "alsa,null"
	}
	line("audio_player", player)
	line("audio_alert", "alsa,null")
	line("audio_source", "aufile,"+source)
	line("rtp_ports", fmt.Sprintf("%d-%d", b.rtpLo, b.rtpLo+baresipRTPPorts-1))
	line("rtcp_mux", "no")
	jb := o.jitterDelay
	if jb == "" {
		jb = "1-10"
	}
	line("jitter_buffer_delay", jb)
	line("net_interface", o.ip)
	line("dns_server", "127.0.0.1:53")
	line("module_path", baresipModuleDir)
	for _, m := range append([]string{"g711", "alsa", "aufile", "srtp", "dtls_srtp"}, o.modules...) {
		line("module", m+".so")
	}
	if o.recordDir != "" {
		line("module", "sndfile.so")
		line("snd_path", o.recordDir)
	}
	line("module_tmp", "account.so")
	line("module_app", "menu.so")
	line("module_app", "ctrl_tcp.so")
	line("ctrl_tcp_listen", net.JoinHostPort(o.ip, strconv.Itoa(ctrlPort)))
	writeFile(t, filepath.Join(b.dir, "config"), c.String())
	// The account is created over ctrl_tcp once it is connected, so that
	// no registration event can be missed; see StartBaresip.
	writeFile(t, filepath.Join(b.dir, "accounts"), "# created with uanew over ctrl_tcp\n")
}

// accountLine is the accounts entry: the AoR at the registrar's domain,
// every request through the registrar over TLS.
func (b *Baresip) accountLine() string {
	o := b.o
	regint := 3600
	if !o.register {
		regint = 0
	}
	return fmt.Sprintf("<sip:%s@%s;transport=tls>;auth_pass=%s;outbound=\"sip:%s;transport=tls\";regint=%d;answermode=%s;mediaenc=%s;audio_codecs=%s",
		o.user, o.domain, o.password, o.registrar, regint, o.answerMode, o.mediaEnc, o.audioCodecs)
}

// AoR is the account's address of record, e.g. sip:alice@127.0.0.1.
func (b *Baresip) AoR() string { return "sip:" + b.o.user + "@" + b.o.domain }

// User is the account's SIP user.
func (b *Baresip) User() string { return b.o.user }

// PID is the process ID of baresip.
func (b *Baresip) PID() int { return b.proc.pid() }

// LogPath is the file holding baresip's output.
func (b *Baresip) LogPath() string { return filepath.Join(b.dir, "baresip.log") }

// Dir is the config dir.
func (b *Baresip) Dir() string { return b.dir }

// RTPPorts is the range, inclusive, baresip takes RTP and RTCP ports from.
func (b *Baresip) RTPPorts() (lo, hi int) { return b.rtpLo, b.rtpLo + baresipRTPPorts - 1 }

// RecordedWAVs lists the WAV files sndfile wrote into the record dir, sorted.
// Each call gives one file per direction; names contain "-enc" (sent) or
// "-dec" (received). Read them after CALL_CLOSED, when they are complete.
func (b *Baresip) RecordedWAVs() []string {
	if b.o.recordDir == "" {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(b.o.recordDir, "*.wav"))
	if err != nil {
		return nil
	}
	sort.Strings(files)
	return files
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func evenUp(p int) int { return p + p%2 }
