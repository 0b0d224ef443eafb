package qemu

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/hal/audio"
	"github.com/hardphone/hardphone/test"
)

// audioKernelPackage is the kernel TestALSALoopback boots: Debian's generic
// arm64 flavour builds snd-aloop as a module (CONFIG_SND_ALOOP=m), while
// the board's cloud kernel has no sound at all (CONFIG_SOUND unset). The
// generic one lacks the TIS TPM driver (CONFIG_TCG_TIS unset), so it cannot
// run the phone's image; the scenario boots it with its own initramfs.
// make kernel-audio fetches it (hpctl image kernel --package).
const audioKernelPackage = "linux-image-arm64"

// alsaSignal is what the guest plays: 0.5 s of pseudo-random noise, which
// aligns the capture with the signal without ambiguity, then 1 s of a
// 1 kHz tone, the frequency the capture must carry.
const (
	alsaRate   = 16000 // system.CallRate, the first rate CallAudio tries
	alsaNoise  = alsaRate / 2
	alsaTone   = alsaRate
	alsaToneHz = 1000.0
	// alsaLeadIn is the silence the WAV starts with: the streams start,
	// and a capture that overran before its reader came (the card runs
	// from open on) recovers, before the signal.
	alsaLeadIn   = alsaRate
	alsaTimeout  = 90 * time.Second
	maxPCMChunks = 1000
)

// TestALSALoopback: Debian's generic arm64 kernel boots on the board's
// machine with an initramfs whose PID 1 (test/qemu/alsaguest) loads
// snd-aloop and its dependencies through hal/kmod and opens the loopback
// card through the phone's call-audio path (system.CallAudio, device
// "alsa": hal/audio's ALSA ioctls). It plays a signal into hw:Loopback,0
// while capturing hw:Loopback,1, and the capture must hold the signal bit
// for bit (snd-aloop copies samples unchanged when both ends run the same
// format), with the tone at 1 kHz.
//
// It is in make test's short slice too (make test fetches the kernel with
// kernel-audio): the phone's ALSA path is exercised on every landing.
func TestALSALoopback(t *testing.T) {
	if workDir == "" {
		t.Skip("needs the private network namespace (root)")
	}
	for _, tool := range []string{"qemu-system-aarch64", "cpio"} {
		test.RequireTool(t, tool)
	}
	start := time.Now()
	root := moduleRoot(t)
	dir := filepath.Join(workDir, "alsa")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hpctl := filepath.Join(dir, "hpctl")
	goBuild(t, root, hpctl, "./cmd/hpctl")
	// This namespace has no way out: make kernel-audio fetched the kernel.
	out, err := exec.Command(hpctl, "image", "kernel", "--board", "qemu-arm64", "--package", audioKernelPackage,
		"--offline", "--cache", filepath.Join(root, ".cache", "hpctl")).CombinedOutput()
	if err != nil {
		t.Fatalf("hpctl image kernel --package %s --offline: %v\n%s(run make kernel-audio outside the namespace)", audioKernelPackage, err, out)
	}
	// "kernel: RELEASE in DIR"
	f := strings.Fields(string(lastLine(out)))
	if len(f) != 4 || f[0] != "kernel:" || f[2] != "in" {
		t.Fatalf("hpctl image kernel said %q, want \"kernel: RELEASE in DIR\"", out)
	}
	release, kroot := f[1], f[3]
	initrd := alsaInitramfs(t, root, dir, filepath.Join(kroot, "lib", "modules", release))
	t.Logf("kernel %s, initramfs %s built in %v", release, initrd, time.Since(start).Round(time.Millisecond))

	vm := test.StartQEMUKernel(t, test.QEMUKernelConfig{
		Kernel: filepath.Join(kroot, "boot", "vmlinuz-"+release), Initrd: initrd,
		Append: "console=ttyAMA0 panic=-1 quiet", Dir: dir,
	})
	var (
		pcm  []byte
		done test.Marker
		open test.Marker
	)
	for done.Event == "" {
		line, at := vm.WaitLine(t, test.MarkerPrefix+"alsa-", alsaTimeout)
		m, ok := test.ParseMarker(line)
		if !ok {
			t.Fatalf("unparsable marker %q", line)
		}
		m.At = at.Round(time.Millisecond)
		switch m.Event {
		case "alsa-error":
			t.Fatalf("guest: %s\n%s", m.Fields["error"], vm.Timeline())
		case "alsa-modules":
			t.Logf("%v guest loaded %s modules", m.At.Round(time.Millisecond), m.Fields["loaded"])
		case "alsa-open":
			open = m
		case "alsa-pcm":
			seq, err := strconv.Atoi(m.Fields["seq"])
			// The guest sends 3000 bytes a line.
			if err != nil || seq != len(pcm)/3000 || seq >= maxPCMChunks {
				t.Fatalf("PCM chunk %q after %d bytes: out of order or too many", m.Fields["seq"], len(pcm))
			}
			b, err := base64.StdEncoding.DecodeString(m.Fields["data"])
			if err != nil {
				t.Fatalf("PCM chunk %d: %v", seq, err)
			}
			pcm = append(pcm, b...)
		case "alsa-done":
			done = m
		}
	}
	vm.Kill(t)
	t.Logf("guest opened %s", open.Line)
	t.Logf("guest done %s", done.Line)
	wantField(t, open, "rate", strconv.Itoa(alsaRate))
	wantField(t, done, "samples", strconv.Itoa(len(pcm)/2))
	capture := make([]int16, len(pcm)/2)
	for i := range capture {
		capture[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	signal := alsaSignal()
	// The lead-in and the loopback add silence in front (the playback
	// buffer filling, capture running before playback): the signal starts
	// at the first sample that is not zero (its own first sample is not).
	lag := slices.IndexFunc(capture, func(s int16) bool { return s != 0 })
	if lag < 0 || lag+len(signal) > len(capture) {
		t.Fatalf("capture of %d samples: signal (%d samples) starts at %d, not within it", len(capture), len(signal), lag)
	}
	got := capture[lag : lag+len(signal)]
	same := 0
	for i := range signal {
		if got[i] == signal[i] {
			same++
		}
	}
	corr := correlation(got, signal)
	tone := test.DetectTone(got[alsaNoise:], alsaRate, alsaToneHz)
	xruns := 0
	for _, k := range []string{"play_underruns", "play_overruns", "capture_overruns"} {
		n, err := strconv.Atoi(done.Fields[k])
		if err != nil {
			t.Fatalf("marker alsa-done: %s = %q: %v", k, done.Fields[k], err)
		}
		xruns += n
	}
	lead, err := strconv.Atoi(done.Fields["lead_in_xruns"])
	if err != nil || lead > xruns {
		t.Fatalf("marker alsa-done: lead_in_xruns = %q of %d xruns", done.Fields["lead_in_xruns"], xruns)
	}
	// Those hit the lead-in's silence only (a capture that overran
	// before its reader came).
	xruns -= lead
	noiseFound, noiseBlocks := blocksFound(capture[lag:], signal[:alsaNoise], audio.FrameSamplesAt(alsaRate))
	t.Logf("capture: signal at %d samples (%.1f ms), %d of %d samples identical, correlation %.6f, 1 kHz share %.4f, "+
		"%d of %d noise frames found bit for bit, %d xruns during the signal (%d in the lead-in)",
		lag, float64(lag)*1000/alsaRate, same, len(signal), corr, tone, noiseFound, noiseBlocks, xruns, lead)
	if xruns == 0 {
		// Nothing lost or inserted: snd-aloop hands over every sample
		// unchanged.
		if same != len(signal) {
			i := 0
			for got[i] == signal[i] {
				i++
			}
			t.Errorf("no xrun, yet the capture differs from the signal at %d of %d samples, first at sample %d (got %d, want %d)",
				len(signal)-same, len(signal), i, got[i], signal[i])
		}
		if corr < 0.999 {
			t.Errorf("correlation(capture, signal) = %.6f, want >= 0.999", corr)
		}
	} else {
		// An xrun (the emulated guest did not run for a buffer's time, as
		// on a loaded host) inserts silence or loses samples: the capture
		// is then the signal with gaps, each frame between them intact.
		t.Logf("the guest reported %d xruns (QEMU's guest starved of CPU for the 80 ms buffer): judging frame by frame", xruns)
		if noiseFound < noiseBlocks/2 {
			t.Errorf("%d of %d noise frames found bit for bit in the capture, want at least half", noiseFound, noiseBlocks)
		}
	}
	if tone < 0.9 {
		t.Errorf("DetectTone(capture tone, 1 kHz) = %.4f, want >= 0.9", tone)
	}
	t.Logf("scenario ALSA loopback: %v (guest done %v after QEMU start)", time.Since(start).Round(time.Millisecond), done.At)
}

// alsaSignal is the noise then the tone, as 16-bit samples; the noise comes
// from a fixed linear congruential generator, so the guest's WAV and the
// test's reference are the same without sharing a file.
func alsaSignal() []int16 {
	s := make([]int16, 0, alsaNoise+alsaTone)
	x := uint32(0x2545F491)
	for len(s) < alsaNoise {
		x = x*1664525 + 1013904223 // Numerical Recipes' LCG
		v := int16(int32(x>>16) - 0x8000)
		s = append(s, v/4|1) // never zero: the first sample marks the start
	}
	for i := range alsaTone {
		s = append(s, int16(12000*math.Sin(2*math.Pi*alsaToneHz*float64(i)/alsaRate)))
	}
	return s
}

// blocksFound splits ref into blocks of n samples and counts those found
// bit for bit in capture, in order: each search starts after the last
// block found.
func blocksFound(capture, ref []int16, n int) (found, blocks int) {
	at := 0
	for off := 0; off+n <= len(ref); off += n {
		blocks++
		b := ref[off : off+n]
		for p := at; p+n <= len(capture); p++ {
			if slices.Equal(capture[p:p+n], b) {
				found, at = found+1, p+n
				break
			}
		}
	}
	return found, blocks
}

// correlation is the normalized cross-correlation of a and b (equal
// lengths) at lag zero: 1 for identical signals.
func correlation(a, b []int16) float64 {
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab, aa, bb = ab+x*y, aa+x*x, bb+y*y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// alsaInitramfs builds the scenario's initramfs in dir: /init (alsaguest
// for arm64), snd-aloop and its dependencies from modDir in /lib/modules
// with /modules.list in modprobe's order, and /signal.wav.
func alsaInitramfs(t *testing.T, root, dir, modDir string) string {
	t.Helper()
	tree := filepath.Join(dir, "initramfs")
	if err := os.MkdirAll(filepath.Join(tree, "lib", "modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	goBuild(t, root, filepath.Join(tree, "init"), "./test/qemu/alsaguest", "GOARCH=arm64")
	mods := modprobeOrder(t, modDir, "snd-aloop")
	var list []string
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(m)
		if err := os.WriteFile(filepath.Join(tree, "lib", "modules", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		list = append(list, name)
	}
	t.Logf("modules, in load order: %s", strings.Join(list, " "))
	if err := os.WriteFile(filepath.Join(tree, "modules.list"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := audio.CreateWAV(filepath.Join(tree, "signal.wav"), alsaRate)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(append(make([]int16, alsaLeadIn), alsaSignal()...)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// cpio's newc format, the one the kernel unpacks; the file list comes
	// from a walk of the tree.
	var files []string
	if err := filepath.WalkDir(tree, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(tree, p)
		files = append(files, rel)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd")
	of, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = tree
	cmd.Stdin = strings.NewReader(strings.Join(files, "\n") + "\n")
	cmd.Stdout = of
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, stderr.String())
	}
	return initrd
}

// modprobeOrder returns the module files (relative to modDir) that loading
// name takes, in the order modprobe loads them: modules.dep lists a
// module's whole dependency closure with the ones it uses directly first,
// so the list reversed, then the module itself.
func modprobeOrder(t *testing.T, modDir, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		t.Fatalf("modules.dep (the kernel cache runs depmod): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		base := filepath.Base(mod)
		if !ok || (base != name+".ko" && !strings.HasPrefix(base, name+".ko.")) {
			continue
		}
		order := strings.Fields(deps)
		slices.Reverse(order)
		return append(order, mod)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("%s/modules.dep has no %s: the kernel has no such module", modDir, name)
	return nil
}
