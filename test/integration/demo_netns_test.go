package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// TestDemo is `make demo`: a local Kamailio with generated PKI, two hardphone
// binaries registering over mutual TLS, one calling the other with SRTP, a
// tone played each way and detected in the other side's recording; then
// the fleet: two phones enrolling zero-touch with hpfleet and calling each
// other with the certificates it issued.
func TestDemo(t *testing.T) {
	// "default" is DTLS-SRTP: the configs carry no media_security key.
	for _, sec := range []string{"default", "sdes"} {
		t.Run(sec, func(t *testing.T) { runDemo(t, sec) })
	}
	t.Run("fleet", runFleetDemo)
}

func runDemo(t *testing.T, security string) {
	e := newEnv(t)
	label := security
	if security == "default" {
		label = "dtls, the default"
	}
	dir := t.TempDir()
	aliceTone, bobTone := filepath.Join(dir, "alice-440.wav"), filepath.Join(dir, "bob-880.wav")
	test.WriteToneWAV(t, aliceTone, toneOurs, 5*time.Second, 8000)
	test.WriteToneWAV(t, bobTone, toneTheirs, 5*time.Second, 8000)
	bobCfg := e.writeConfig(t, phoneConf{user: "bob", mediaSecurity: security, digestMin: "MD5"})
	aliceCfg := e.writeConfig(t, phoneConf{user: "alice", mediaSecurity: security, digestMin: "MD5"})
	recDir := t.TempDir()
	bob := startAgentProcess(t, "--config", bobCfg, "--play", bobTone, "--record-dir", recDir)
	e.k.WaitRegistered(t, "bob", 10*time.Second)
	fmt.Printf("demo[%s]: bob registered over mutual TLS (pid %d)\n", label, bob.cmd.Process.Pid)

	aliceRec := filepath.Join(dir, "alice-received.wav")
	var out, errb bytes.Buffer
	cmd := exec.Command(hardphoneBinary(t), "call", "--config", aliceCfg, "--log-format", "json",
		"--play", aliceTone, "--record", aliceRec, "--duration", "4s", "--dtmf", "1#", "sip:bob@"+e.k.IP())
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	summary := strings.TrimSpace(out.String())
	fmt.Printf("demo[%s]: hardphone call summary: %s\n", label, summary)
	if want := map[string]string{"default": `"security":"dtls-srtp"`, "sdes": `"security":"sdes"`}[security]; !strings.Contains(summary, want) {
		t.Errorf("call summary lacks %s", want)
	}
	if err != nil {
		t.Fatalf("hardphone call: %v\nstderr:\n%s\nbob log:\n%s", err, tail(errb.String(), 40), tail(readFile(bob.log), 40))
	}
	var sum struct {
		Established bool `json:"established"`
		SRTP        bool `json:"srtp"`
		Media       struct {
			Suite           string `json:"suite"`
			PacketsSent     int    `json:"packets_sent"`
			PacketsReceived int    `json:"packets_received"`
		} `json:"media"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("summary %q: %v", summary, err)
	}
	if !sum.Established || !sum.SRTP || sum.Media.Suite == "" || sum.Media.PacketsReceived < 100 {
		t.Errorf("summary = %+v, want an established SRTP call with audio both ways", sum)
	}
	samples, rate, err := test.ReadWAV(aliceRec)
	if err != nil {
		t.Fatal(err)
	}
	r := test.DetectTone(samples, rate, toneTheirs)
	fmt.Printf("demo[%s]: alice heard bob's %v Hz tone (energy ratio %.2f)\n", label, toneTheirs, r)
	if r < 0.5 {
		t.Errorf("alice's recording: %v Hz ratio %.2f, want >= 0.5", toneTheirs, r)
	}
	status, err := exec.Command(hardphoneBinary(t), "status", "--config", bobCfg).CombinedOutput()
	fmt.Printf("demo[%s]: hardphone status (bob):\n", label)
	for _, l := range strings.Split(strings.TrimSpace(string(status)), "\n") {
		fmt.Printf("demo[%s]:   %s\n", label, l)
	}
	if err != nil || !strings.Contains(string(status), "registered (granted") {
		t.Errorf("hardphone status = %q, %v; want bob registered", status, err)
	}
	js, err := exec.Command(hardphoneBinary(t), "status", "--config", bobCfg, "--json").CombinedOutput()
	if err != nil || !json.Valid(js) || !strings.Contains(string(js), `"registered":true`) {
		t.Errorf("hardphone status --json = %q, %v; want JSON with bob registered", js, err)
	}
	if err := bob.stop(t); err != nil {
		t.Errorf("bob exit: %v", err)
	}
	recs, _ := filepath.Glob(filepath.Join(recDir, "*.wav"))
	if len(recs) != 1 {
		t.Fatalf("bob recordings = %v, want 1", recs)
	}
	s, rr, err := test.ReadWAV(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	r = test.DetectTone(s, rr, toneOurs)
	fmt.Printf("demo[%s]: bob heard alice's %v Hz tone (energy ratio %.2f)\n", label, toneOurs, r)
	if r < 0.5 {
		t.Errorf("bob's recording: %v Hz ratio %.2f, want >= 0.5", toneOurs, r)
	}
}
