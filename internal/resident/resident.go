package resident

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrUnsupported is returned where the kernel interface is missing.
var ErrUnsupported = errors.New("resident: releasing code pages is only supported on Linux")

// Released is what one ReleaseCode call did, in KiB of the executable's
// read-only mappings resident in this process.
type Released struct {
	BeforeKiB int
	AfterKiB  int
	// Mappings is how many mappings were released; Kept how many were
	// left alone because they hold private copies.
	Mappings, Kept int
}

// mapping is one read-only mapping of the executable in smaps.
type mapping struct {
	lo, hi    uintptr
	rssKiB    int
	anonKiB   int
	hasCounts bool
}

// exeMappings reads smaps for the read-only mappings (r-xp, r--p) of the
// file exe. It reads a line at a time and allocates only for those
// mappings: the agent calls it when idle, and garbage would grow the heap
// it is trying to keep small.
func exeMappings(smaps io.Reader, exe string) ([]mapping, error) {
	var out []mapping
	cur := -1
	sc := bufio.NewScanner(smaps)
	sc.Buffer(make([]byte, 0, 1024), 64*1024)
	for sc.Scan() {
		first, rest := field(sc.Bytes())
		switch {
		case len(first) == 0:
			continue
		case first[len(first)-1] == ':':
			// "Key: value kB" of the mapping above.
			if cur < 0 {
				continue
			}
			rss, anon := string(first) == "Rss:", string(first) == "Anonymous:"
			if !rss && !anon {
				continue
			}
			v, _ := field(rest)
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return nil, fmt.Errorf("smaps: %s %q: %w", first, v, err)
			}
			if rss {
				out[cur].rssKiB = n
			} else {
				out[cur].anonKiB = n
				out[cur].hasCounts = true
			}
			continue
		}
		// A mapping: "start-end perms offset dev inode [path]"; the path
		// is the rest of the line and may hold spaces (and " (deleted)"
		// once the file is replaced).
		cur = -1
		perms, rest := field(rest)
		if string(perms) != "r-xp" && string(perms) != "r--p" {
			continue
		}
		for range 3 { // offset, device, inode
			_, rest = field(rest)
		}
		if string(bytes.TrimSpace(rest)) != exe {
			continue
		}
		lo, hi, ok := bytes.Cut(first, []byte("-"))
		if !ok {
			return nil, fmt.Errorf("smaps: bad range %q", first)
		}
		a, err1 := strconv.ParseUint(string(lo), 16, 64)
		b, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			return nil, fmt.Errorf("smaps: bad range %q", first)
		}
		out = append(out, mapping{lo: uintptr(a), hi: uintptr(b)})
		cur = len(out) - 1
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("smaps: %w", err)
	}
	for _, m := range out {
		if !m.hasCounts {
			return nil, fmt.Errorf("smaps: mapping %x-%x has no Anonymous count", m.lo, m.hi)
		}
	}
	return out, nil
}

// field splits the first space-separated field off b.
func field(b []byte) (f, rest []byte) {
	b = bytes.TrimLeft(b, " \t")
	i := bytes.IndexAny(b, " \t")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}

func sumRss(ms []mapping) int {
	n := 0
	for _, m := range ms {
		n += m.rssKiB
	}
	return n
}
