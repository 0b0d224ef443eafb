package update

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkInstall measures Install of a verity bundle into a file slot
// (signature, every block checked before writing, every block checked again
// while streaming, image sha256, slot Sync) beside, in the same run, the
// machine's limit for the same bytes:
//   - reference_iocopy: read the bundle, SHA-256 over it, write the slot,
//     fsync (Go, 1 MiB buffers: the io.Copy equivalent of dd);
//   - reference_dd: the same, with the writing done by dd (bs=1M
//     conv=notrunc,fsync) fed through a pipe.
//
// The install reports peak-heap-B: the most live heap sampled during an
// install above what was live before it.
func BenchmarkInstall(b *testing.B) {
	for _, size := range []int{32 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			r := newRig(b, size+(1<<20))
			pki := sharedPKI(b)
			path := r.ownBundle(bundleSpec{version: "bench", secver: 1, signer: pki.Leaf, image: randomBytes(b, size)})
			st, err := os.Stat(path)
			if err != nil {
				b.Fatalf("stat: %v", err)
			}
			resetEnv := func() {
				if err := r.store().Set(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}); err != nil {
					b.Fatalf("reset env: %v", err)
				}
			}
			b.Run("install", func(b *testing.B) {
				u := r.updater()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				var peak int64
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					resetEnv()
					runtime.GC()
					stop := sampleHeap(&peak)
					b.StartTimer()
					if _, err := u.Install(context.Background(), path, InstallOptions{}); err != nil {
						b.Fatalf("Install() error %v", err)
					}
					b.StopTimer()
					stop()
					b.StartTimer()
				}
				b.ReportMetric(float64(peak), "peak-heap-B")
			})
			b.Run("reference_iocopy", func(b *testing.B) {
				b.SetBytes(int64(size))
				for i := 0; i < b.N; i++ {
					if err := referenceCopy(path, r.SlotB, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("reference_dd", func(b *testing.B) {
				dd, err := exec.LookPath("dd")
				if err != nil {
					b.Skipf("dd: %v", err)
				}
				b.SetBytes(int64(size))
				for i := 0; i < b.N; i++ {
					cmd := exec.Command(dd, "of="+r.SlotB, "bs=1M", "conv=notrunc,fsync", "iflag=fullblock", "status=none")
					if err := referenceCopy(path, "", cmd); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Logf("bundle %s: %d bytes for a %d-byte image", filepath.Base(path), st.Size(), size)
		})
	}
}

// referenceCopy reads src with 1 MiB reads, hashes it with SHA-256 and
// writes it to dst (then fsyncs), or into dd's standard input.
func referenceCopy(src, dst string, dd *exec.Cmd) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var w io.Writer
	var sync func() error
	if dd != nil {
		pw, err := dd.StdinPipe()
		if err != nil {
			return err
		}
		if err := dd.Start(); err != nil {
			return err
		}
		w = pw
		sync = func() error {
			if err := pw.Close(); err != nil {
				return err
			}
			return dd.Wait()
		}
	} else {
		out, err := os.OpenFile(dst, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		w = out
		sync = func() error {
			if err := out.Sync(); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	_ = h.Sum(nil) // the digest is the work being measured, not a result
	return sync()
}

// sampleHeap records into peak the largest live heap (above the level at
// start) seen every 2 ms until the returned stop is called.
func sampleHeap(peak *int64) (stop func()) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64())
	}
	base := read()
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			if d := read() - base; d > *peak {
				*peak = d
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() { done.Store(true); wg.Wait() }
}
