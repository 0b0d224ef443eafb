package resident

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
// file exe. It reads a line at a time and keeps only those mappings: the
// agent calls it when idle, and a copy of the whole file would be garbage
// its heap grows by.
func exeMappings(smaps io.Reader, exe string) ([]mapping, error) {
	var out []mapping
	cur := -1
	sc := bufio.NewScanner(smaps)
	sc.Buffer(make([]byte, 0, 1024), 64*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if isHeader(f) {
			cur = -1
			// "start-end perms offset dev inode [path]"; a path may hold
			// spaces (and " (deleted)" once the file is replaced).
			if len(f) < 6 || (f[1] != "r-xp" && f[1] != "r--p") || strings.Join(f[5:], " ") != exe {
				continue
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			if !ok {
				return nil, fmt.Errorf("smaps: bad range %q", f[0])
			}
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || b <= a {
				return nil, fmt.Errorf("smaps: bad range %q", f[0])
			}
			out = append(out, mapping{lo: uintptr(a), hi: uintptr(b)})
			cur = len(out) - 1
			continue
		}
		if cur < 0 || len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Rss:", "Anonymous:":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("smaps: %s %q: %w", f[0], f[1], err)
			}
			if f[0] == "Rss:" {
				out[cur].rssKiB = n
			} else {
				out[cur].anonKiB = n
				out[cur].hasCounts = true
			}
		}
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

// isHeader reports whether smaps fields start a mapping ("lo-hi perms ...")
// rather than being one of its "Key: value" lines.
func isHeader(f []string) bool {
	return len(f) >= 5 && !strings.HasSuffix(f[0], ":") && strings.Contains(f[0], "-")
}

func sumRss(ms []mapping) int {
	n := 0
	for _, m := range ms {
		n += m.rssKiB
	}
	return n
}
