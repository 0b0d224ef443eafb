package resident

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReleaseCode drops this process's mappings of its executable's resident
// code and read-only data pages (MADV_DONTNEED) and marks the mappings for
// random access (MADV_RANDOM: a page faulted back in is read alone, not
// with a readahead window of its neighbours, and the kernel maps only
// it). With dropCache it also evicts the executable's pages no process
// maps from the page cache (POSIX_FADV_DONTNEED), freeing the memory
// start-up used and putting the pages read back later in single-page
// folios (the kernel maps a whole large folio at a fault). A page another
// process maps (PID 1 runs the same executable) stays cached for it. It is
// safe to call at any time from any goroutine; it costs a read of
// /proc/self/smaps and a few system calls a mapping.
func ReleaseCode(dropCache bool) (Released, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Released{}, fmt.Errorf("resident: %w", err)
	}
	ms, err := selfMappings(exe)
	if err != nil {
		return Released{}, err
	}
	if len(ms) == 0 {
		return Released{}, fmt.Errorf("resident: no read-only mapping of %s in /proc/self/smaps", exe)
	}
	r := Released{BeforeKiB: sumRss(ms)}
	for _, m := range ms {
		if m.anonKiB != 0 {
			r.Kept++
			continue
		}
		if err := madvise(m, unix.MADV_RANDOM); err != nil {
			return r, fmt.Errorf("resident: madvise(MADV_RANDOM) %x-%x: %w", m.lo, m.hi, err)
		}
		if err := madvise(m, unix.MADV_DONTNEED); err != nil {
			return r, fmt.Errorf("resident: madvise(MADV_DONTNEED) %x-%x: %w", m.lo, m.hi, err)
		}
		r.Mappings++
	}
	if dropCache {
		// /proc/self/exe opens the file this process runs even when its
		// path was replaced since.
		f, err := os.Open("/proc/self/exe")
		if err != nil {
			return r, fmt.Errorf("resident: %w", err)
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return r, fmt.Errorf("resident: fadvise(POSIX_FADV_DONTNEED) %s: %w", exe, err)
		}
	}
	after, err := selfMappings(exe)
	if err != nil {
		return r, err
	}
	r.AfterKiB = sumRss(after)
	return r, nil
}

// Faults is how many page faults the process has taken (minor and major):
// every page it made resident, code or data. A caller compares two counts
// to learn whether anything ran since.
func Faults() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("resident: getrusage: %w", err)
	}
	return int64(ru.Minflt) + int64(ru.Majflt), nil
}

func selfMappings(exe string) ([]mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, fmt.Errorf("resident: %w", err)
	}
	defer f.Close()
	ms, err := exeMappings(f, exe)
	if err != nil {
		return nil, fmt.Errorf("resident: %w", err)
	}
	return ms, nil
}

// madvise advises on a range of this process's own address space, which
// the Go runtime did not allocate (the executable's mappings), so it is
// passed as addresses, never as a Go slice.
func madvise(m mapping, advice int) error {
	_, _, e := unix.Syscall(unix.SYS_MADVISE, m.lo, m.hi-m.lo, uintptr(advice))
	if e != 0 {
		return e
	}
	return nil
}
