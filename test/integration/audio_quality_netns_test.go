//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/media"
	"github.com/hardphone/hardphone/test"
)

// The audio quality tests: a person's voice (espeak-ng speaking a
// sentence) goes into the phone's microphone, a PulseAudio null sink's
// virtual source, and comes out at baresip, across Kamailio, over SRTP; at
// the same time baresip's sentence comes out of the phone's speaker,
// recorded from the null sink's monitor. What arrives is scored against
// what was said (test.Intelligibility: STOI, and a waveform correlation)
// and described by sox's statistics.
//
// Kamailio and baresip run in a peer namespace behind a veth, the phone in
// the test's namespace, so that the lossy-link case can impair exactly the
// link between them (test.StartNetem) and nothing else.

// audioUsers are the SIP users of the audio rig's registrar: one pair per
// call, so no binding left by one call forks the next.
var audioUsers = map[string]string{
	"hp1": "hp1-pw", "hp2": "hp2-pw", "hp3": "hp3-pw", "hp4": "hp4-pw", "hp5": "hp5-pw",
	"bs1": "bs1-pw", "bs2": "bs2-pw", "bs3": "bs3-pw", "bs4": "bs4-pw", "bs5": "bs5-pw",
	"ref1": "ref1-pw", "ref2": "ref2-pw",
}

// The sentences: different each way, so a leak of one direction into the
// other cannot pass for the audio that was meant to arrive.
const (
	ourSentence   = "The quick brown fox jumps over the lazy dog, and then runs back into the forest."
	theirSentence = "Please call me back tomorrow morning after nine, when the office is open again."
	speechRate    = 16000
)

// g722Baresip is G.722 alone in baresip's audio_codecs: it names codecs
// with their sampling rate ("G722" alone is looked up at 8000 Hz and not
// found, and the account then takes every codec loaded).
const g722Baresip = "G722/16000/1"

// lossyBaresipJB is baresip's jitter buffer on the lossy link: 100 to
// 300 ms.
const lossyBaresipJB = "5-15"

// audioNice is the nice level both ends of a call get (PulseAudio runs at
// -11): on a test machine shared with builds, a phone starved of CPU for
// a few hundred milliseconds drops audio, and that would be measured as
// the phone's quality.
const audioNice = -10

// lossyLink is the impaired network of the issue: 5 % loss, 40 ms of
// jitter (uniform: every packet 10 to 90 ms late), both ways.
var lossyLink = test.NetemSpec{Delay: 50 * time.Millisecond, Jitter: 40 * time.Millisecond, Loss: 0.05, Seed: 15}

type audioRig struct {
	peer          *test.Peer
	e             *env
	pulse         *test.Pulse
	bareIP, kamIP netip.Addr
	ours, theirs  []int16 // the sentences, at speechRate, with lead-in
	// theirsWAV is theirs padded for baresip's aufile, by rate: baresip
	// 1.0 does not convert rates, so the file must be at the codec's.
	theirsWAV map[int]string
}

func newAudioRig(t testing.TB) *audioRig {
	t.Helper()
	// This process runs the network emulator: give it the calls' priority
	// too while the rig lives.
	test.Renice(t, os.Getpid(), audioNice)
	t.Cleanup(func() { test.Renice(t, os.Getpid(), 0) })
	peer := test.NewPeer(t, 2)
	r := &audioRig{peer: peer, bareIP: peer.Peer4[0], kamIP: peer.Peer4[1]}
	peer.Run(t, func() {
		r.e = newEnv(t, test.KamailioListenIP(r.kamIP.String()), test.KamailioUsers(audioUsers))
	})
	r.pulse = test.StartPulse(t)
	// A real microphone delivers audio (room noise, or digital silence)
	// all the time, and a real sound card plays in real time; an idle null
	// sink renders in bursts (a third of real time, measured), so its
	// monitor and the virtual microphone behind it would stall or lose
	// time. Keep a stream of silence playing into both.
	r.silence(t, test.PulseMicSink)
	r.silence(t, test.PulseSpeaker)
	r.ours = test.Speak(t, ourSentence, speechRate, 0.3, 0.5)
	r.theirs = test.Speak(t, theirSentence, speechRate, 1.0, 0)
	// baresip's aufile ends the call at the end of its file: pad it well
	// past any call here.
	padded := append(append([]int16(nil), r.theirs...), make([]int16, 30*speechRate)...)
	r.theirsWAV = map[int]string{}
	for _, rate := range []int{8000, 16000} {
		r.theirsWAV[rate] = filepath.Join(t.TempDir(), fmt.Sprintf("theirs-%d.wav", rate))
		test.WriteWAV(t, r.theirsWAV[rate], test.Resample(t, padded, speechRate, rate), rate)
	}
	return r
}

// startBaresip starts a baresip for user in the peer namespace, sending
// theirs and recording what it receives, with the audio codecs named (a
// baresip list such as "G722" or "PCMU,PCMA").
func (r *audioRig) startBaresip(t testing.TB, user, codecs string, opts ...test.BaresipOption) *test.Baresip {
	t.Helper()
	var b *test.Baresip
	wav := r.theirsWAV[8000]
	if strings.HasPrefix(codecs, "G722") {
		wav = r.theirsWAV[16000]
	}
	r.peer.Run(t, func() {
		b = test.StartBaresip(t, append([]test.BaresipOption{
			test.BaresipKamailio(r.e.k, user), test.BaresipListenIP(r.bareIP.String()),
			test.BaresipMediaEnc("srtp-mand"), test.BaresipModule("g722"), test.BaresipAudioCodecs(codecs),
			test.BaresipAudioSource(wav), test.BaresipRecordDir(filepath.Join(t.TempDir(), "rec")),
		}, opts...)...)
	})
	test.Renice(t, b.PID(), audioNice)
	return b
}

// phoneConfig writes a hardphone config for user whose calls talk through
// the rig's PulseAudio (microphone: the virtual source; speaker: the null
// sink), with media on the veth.
func (r *audioRig) phoneConfig(t testing.TB, user string) string {
	t.Helper()
	return r.phoneConfigAudio(t, user, fmt.Sprintf("\n[audio]\ndevice = \"pulse\"\nserver = %q\ninput = %q\noutput = %q\n",
		r.pulse.Server, test.PulseMic, test.PulseSpeaker))
}

// phoneConfigAudio writes a hardphone config for user with media on the
// veth and audioTable appended ("" for none).
func (r *audioRig) phoneConfigAudio(t testing.TB, user, audioTable string) string {
	t.Helper()
	path := r.e.writeConfig(t, phoneConf{user: user, password: audioUsers[user], mediaSecurity: "sdes", extra: audioTable})
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const loopbackMedia = `local_ip = "127.0.0.1"`
	if strings.Count(string(cfg), loopbackMedia) != 1 {
		t.Fatalf("config %s: want one %q to replace", path, loopbackMedia)
	}
	cfg = []byte(strings.Replace(string(cfg), loopbackMedia, fmt.Sprintf("local_ip = %q", r.peer.Local4), 1))
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// recorder collects what parec records from the speaker's monitor.
type recorder struct {
	mu      sync.Mutex
	samples []int16
	done    chan struct{}
}

func (r *audioRig) record(t testing.TB) *recorder {
	t.Helper()
	out := r.pulse.Parec(t, test.PulseSpeakerMonitor, speechRate, 20*time.Millisecond)
	rec := &recorder{done: make(chan struct{})}
	go func() {
		defer close(rec.done)
		br := bufio.NewReader(out)
		buf := make([]byte, 640)
		for {
			n, err := io.ReadFull(br, buf)
			rec.mu.Lock()
			for i := 0; i+1 < n; i += 2 {
				rec.samples = append(rec.samples, int16(binary.LittleEndian.Uint16(buf[i:])))
			}
			rec.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return rec
}

// waitFor waits until n samples have been recorded.
func (rec *recorder) waitFor(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rec.mu.Lock()
		got := len(rec.samples)
		rec.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("speaker recorded %d samples in %v, want %d", got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rec *recorder) take() []int16 {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]int16(nil), rec.samples...)
}

// silence plays silence into sink until the test ends.
func (r *audioRig) silence(t testing.TB, sink string) {
	t.Helper()
	in := r.pulse.Pacat(t, sink, speechRate, 20*time.Millisecond)
	go func() {
		silence := make([]byte, 2*speechRate/10)
		for {
			// pacat takes it at the rate it plays; the write fails once the
			// test's cleanup has stopped pacat.
			if _, err := in.Write(silence); err != nil {
				return
			}
		}
	}()
}

// speak plays samples (at speechRate) into the phone's microphone, in real
// time, and returns once pacat has taken them all.
func (r *audioRig) speak(t testing.TB, samples []int16) {
	t.Helper()
	in := r.pulse.Pacat(t, test.PulseMicSink, speechRate, 20*time.Millisecond)
	b := make([]byte, 2*len(samples))
	for i, v := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	if _, err := in.Write(b); err != nil {
		t.Fatalf("pacat: %v", err)
	}
	// pacat plays what it was given, then exits at the end of its input.
	if err := in.Close(); err != nil {
		t.Fatalf("pacat: %v", err)
	}
}

// callSummary is what `hardphone call` prints.
type callSummary struct {
	Established bool        `json:"established"`
	Secure      bool        `json:"srtp"`
	Error       string      `json:"error"`
	Media       media.Stats `json:"media"`
}

// hardphoneCall runs `hardphone call` in the background and delivers its
// summary when it exits.
func hardphoneCall(t testing.TB, cfg, target string, d time.Duration) <-chan callSummary {
	t.Helper()
	bin := hardphoneBinary(t)
	logPath := filepath.Join(t.TempDir(), "hardphone-call.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "call", "--config", cfg, "--log-format", "json", "--duration", d.String(), target)
	cmd.Stdout, cmd.Stderr = &stdout, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hardphone call: %v", err)
	}
	test.Renice(t, cmd.Process.Pid, audioNice)
	out := make(chan callSummary, 1)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		err := cmd.Wait()
		lf.Close()
		var sum callSummary
		if jerr := json.Unmarshal(stdout.Bytes(), &sum); jerr != nil || err != nil {
			sum.Error = fmt.Sprintf("hardphone call: %v; summary %q: %v; log tail:\n%s", err, stdout.String(), jerr, tail(readFile(logPath), 30))
		}
		out <- sum
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // already exited in a passing test
		<-waited
	})
	return out
}

// decRecording returns what baresip recorded of the audio it received
// (sndfile's "-dec" file) once the call has closed.
func decRecording(t testing.TB, b *test.Baresip) ([]int16, int, string) {
	t.Helper()
	for _, f := range b.RecordedWAVs() {
		if strings.HasSuffix(f, "-dec.wav") {
			s, rate, err := test.ReadWAV(f)
			if err != nil {
				t.Fatalf("read %s: %v", f, err)
			}
			return s, rate, f
		}
	}
	t.Fatalf("baresip recorded no -dec.wav: %v", b.RecordedWAVs())
	return nil, 0, ""
}

// speechSeconds is how long the sentences take, rounded up.
func (r *audioRig) speechSeconds() time.Duration {
	n := max(len(r.ours), len(r.theirs))
	return time.Duration(n/speechRate+1) * time.Second
}

// audioResult is one call's two directions.
type audioResult struct {
	name             string
	codec            string
	toPeer, fromPeer test.Score
	stats            media.Stats
	peerRMS, ourRMS  float64 // sox RMS level of the recordings, dB
	toPeerRecRate    int
}

// callFromPhone: the phone calls baresip; each says its sentence; both
// recordings are scored.
func (r *audioRig) callFromPhone(t testing.TB, hpUser string, b *test.Baresip) audioResult {
	t.Helper()
	cfg := r.phoneConfig(t, hpUser)
	rec := r.record(t)
	sum := hardphoneCall(t, cfg, "sip:"+b.User()+"@"+r.kamIP.String(), r.speechSeconds()+3*time.Second)
	b.WaitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	r.speak(t, r.ours)
	s := <-sum
	if s.Error != "" || !s.Established || !s.Secure {
		t.Fatalf("hardphone call: %+v", s)
	}
	b.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	return r.score(t, b, rec, s.Media)
}

// callToPhone: baresip calls the phone (`hardphone run` answering); each
// says its sentence; both recordings are scored. The phone's media stats
// come from `hardphone status` while the call is up.
func (r *audioRig) callToPhone(t testing.TB, hpUser string, b *test.Baresip) audioResult {
	t.Helper()
	cfg := r.phoneConfig(t, hpUser)
	ap := startAgentProcess(t, "--config", cfg)
	test.Renice(t, ap.cmd.Process.Pid, audioNice)
	r.e.k.WaitRegistered(t, hpUser, 15*time.Second)
	rec := r.record(t)
	b.Dial(t, "sip:"+hpUser+"@"+r.kamIP.String())
	b.WaitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	have := len(rec.take())
	r.speak(t, r.ours)
	// While both talk, the call's levels (over the last second) show
	// speech each way on the control protocol.
	var talking media.Stats
	deadline := time.Now().Add(15 * time.Second)
	for {
		talking = phoneCallStats(t, cfg)
		if talking.SendLevel.RMSdBFS > -50 && talking.RecvLevel.RMSdBFS > -50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("levels while both talk: send %+v recv %+v, want both above -50 dBFS", talking.SendLevel, talking.RecvLevel)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("levels while both talk: send %+v recv %+v", talking.SendLevel, talking.RecvLevel)
	// Both sentences have played out once the speaker has recorded the
	// longer one and a second more since the call was answered.
	rec.waitFor(t, have+int(r.speechSeconds()/time.Second+1)*speechRate, 30*time.Second)
	st := phoneCallStats(t, cfg)
	b.Hangup(t)
	b.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	return r.score(t, b, rec, st)
}

// phoneCallStats asks the running agent for its one call's media stats.
func phoneCallStats(t testing.TB, cfg string) media.Stats {
	t.Helper()
	out, err := exec.Command(hardphoneBinary(t), "status", "--config", cfg, "--json").Output()
	if err != nil {
		t.Fatalf("hardphone status: %v: %s", err, out)
	}
	var st struct {
		Accounts []struct {
			Calls []struct {
				Media media.Stats `json:"media"`
			} `json:"calls"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal(out, &st); err != nil || len(st.Accounts) == 0 || len(st.Accounts[0].Calls) != 1 {
		t.Fatalf("hardphone status: %v; want one call in\n%s", err, out)
	}
	return st.Accounts[0].Calls[0].Media
}

// score reads both recordings and scores them.
func (r *audioRig) score(t testing.TB, b *test.Baresip, rec *recorder, st media.Stats) audioResult {
	t.Helper()
	dec, decRate, decPath := decRecording(t, b)
	heard := rec.take()
	heardPath := filepath.Join(t.TempDir(), "phone-speaker.wav")
	test.WriteWAV(t, heardPath, heard, speechRate)
	if dir := os.Getenv("HARDPHONE_AUDIO_KEEP"); dir != "" {
		// Keep the recordings for listening to: HARDPHONE_AUDIO_KEEP=DIR.
		name := strings.ReplaceAll(t.Name(), "/", "_")
		for src, dst := range map[string]string{decPath: name + "-baresip-heard.wav", heardPath: name + "-phone-heard.wav"} {
			if b, err := os.ReadFile(src); err == nil {
				_ = os.WriteFile(filepath.Join(dir, dst), b, 0o644) // a debugging aid: a failed copy changes no result
			}
		}
		test.WriteWAV(t, filepath.Join(dir, "ours.wav"), r.ours, speechRate)
		test.WriteWAV(t, filepath.Join(dir, "theirs.wav"), r.theirs, speechRate)
	}
	res := audioResult{
		codec:         st.Codec,
		stats:         st,
		toPeer:        test.Intelligibility(t, r.ours, speechRate, dec, decRate),
		fromPeer:      test.Intelligibility(t, r.theirs, speechRate, heard, speechRate),
		peerRMS:       test.SoxStats(t, decPath)["RMS lev dB"],
		ourRMS:        test.SoxStats(t, heardPath)["RMS lev dB"],
		toPeerRecRate: decRate,
	}
	t.Logf("phone -> baresip (%s, recorded at %d Hz, RMS %.1f dB): %v", st.Codec, decRate, res.peerRMS, res.toPeer)
	t.Logf("baresip -> phone (%s, RMS %.1f dB): %v", st.Codec, res.ourRMS, res.fromPeer)
	t.Logf("phone media: sent %d received %d lost %d late %d concealed %d stretched %d compressed %d jitter %.1f ms playout %.1f/%.1f ms send %+v recv %+v",
		st.PacketsSent, st.PacketsReceived, st.PacketsLost, st.LateDropped, st.ConcealedFrames, st.Stretched, st.Compressed,
		st.JitterMS, st.PlayoutDelayMS, st.PlayoutTargetMS, st.SendLevel, st.RecvLevel)
	return res
}

// TestAudioQuality is issue 15's audio test: speech both ways through
// PulseAudio, hardphone, Kamailio and baresip over SRTP, in G.711 and
// G.722, in both call directions, and over a link with 5 % loss and 40 ms
// of jitter. The thresholds are well under what each case scores on a
// quiet machine (logged: STOI 0.95 to 1.0 and correlation 0.9 to 0.99 on
// the clean link, 0.93 to 0.96 on the lossy one), leaving room for a test
// machine busy with builds, which holds up either end now and then, and
// well over what a broken path gives (silence, noise or the other sentence
// score about 0.4, see test.TestIntelligibility).
func TestAudioQuality(t *testing.T) {
	r := newAudioRig(t)
	tests := []struct {
		name     string
		hp, bs   string
		codecs   string
		wantCode string
		toPhone  bool
		lossy    bool
		minSTOI  float64
		minCorr  float64 // waveform correlation; not checked on the lossy link
	}{
		{"pcmu/hardphone_calls_baresip", "hp1", "bs1", "PCMU", "PCMU", false, false, 0.7, 0.6},
		{"g722/hardphone_calls_baresip", "hp2", "bs2", g722Baresip, "G722", false, false, 0.7, 0.6},
		{"g722/baresip_calls_hardphone", "hp3", "bs3", g722Baresip, "G722", true, false, 0.7, 0.6},
		{"g722/lossy_link/hardphone_calls_baresip", "hp4", "bs4", g722Baresip, "G722", false, true, 0.7, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []test.BaresipOption
			if tt.lossy {
				// baresip's own concealment, and a jitter buffer sized for
				// the link (its default, 1-10 frames, is not adaptive and
				// loses much of a 40 ms jitter stream), so that the phone ->
				// baresip direction measures the phone and the link, not a
				// peer set up for a LAN.
				opts = append(opts, test.BaresipModule("plc"), test.BaresipJitterBuffer(lossyBaresipJB))
			}
			b := r.startBaresip(t, tt.bs, tt.codecs, opts...)
			if tt.lossy {
				test.StartNetem(t, r.peer.LocalIf, lossyLink)
			}
			var res audioResult
			if tt.toPhone {
				res = r.callToPhone(t, tt.hp, b)
			} else {
				res = r.callFromPhone(t, tt.hp, b)
			}
			if res.codec != tt.wantCode {
				t.Fatalf("codec %q, want %s", res.codec, tt.wantCode)
			}
			if tt.wantCode == "G722" && (res.stats.SampleRate != 16000 || res.toPeerRecRate != 16000) {
				t.Fatalf("G.722 call: phone at %d Hz, baresip decoded at %d Hz; want 16000 both", res.stats.SampleRate, res.toPeerRecRate)
			}
			for _, d := range []struct {
				dir string
				s   test.Score
			}{{"phone -> baresip", res.toPeer}, {"baresip -> phone", res.fromPeer}} {
				if d.s.STOI < tt.minSTOI || d.s.Correlation < tt.minCorr {
					t.Errorf("%s: %v, want STOI >= %.2f and correlation >= %.2f", d.dir, d.s, tt.minSTOI, tt.minCorr)
				}
			}
			if res.peerRMS < -35 || res.ourRMS < -35 {
				t.Errorf("recordings' RMS levels (sox) %.1f dB at baresip, %.1f dB at the phone's speaker; want speech, above -35 dB", res.peerRMS, res.ourRMS)
			}
			if tt.lossy && (res.stats.PacketsLost == 0 || res.stats.JitterMS < 5) {
				t.Errorf("lossy link: phone saw %d lost, jitter %.1f ms; want loss and jitter measured", res.stats.PacketsLost, res.stats.JitterMS)
			}
		})
	}
}
