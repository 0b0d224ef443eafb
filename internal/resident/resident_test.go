package resident

import (
	"strings"
	"testing"
)

const smapsSample = `00400000-00c00000 r-xp 00000000 fd:01 1234 /usr/bin/hard phone
Size:               8192 kB
Rss:                6000 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00c00000-01400000 r--p 00800000 fd:01 1234 /usr/bin/hard phone
Size:               8192 kB
Rss:                5000 kB
Anonymous:            12 kB
01400000-01500000 rw-p 01000000 fd:01 1234 /usr/bin/hard phone
Size:               1024 kB
Rss:                 300 kB
Anonymous:           200 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6
Size:               1024 kB
Rss:                 700 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  20 kB
Anonymous:            20 kB
`

func TestExeMappings(t *testing.T) {
	ms, err := exeMappings(strings.NewReader(smapsSample), "/usr/bin/hard phone")
	if err != nil {
		t.Fatal(err)
	}
	// The two read-only mappings of the executable, not its writable data,
	// not another file's code, not the stack.
	if len(ms) != 2 {
		t.Fatalf("mappings: %+v", ms)
	}
	if ms[0].lo != 0x400000 || ms[0].hi != 0xc00000 || ms[0].rssKiB != 6000 || ms[0].anonKiB != 0 {
		t.Errorf("text: %+v", ms[0])
	}
	if ms[1].rssKiB != 5000 || ms[1].anonKiB != 12 {
		t.Errorf("rodata: %+v", ms[1])
	}
	if n := sumRss(ms); n != 11000 {
		t.Errorf("sum %d", n)
	}
	// A replaced executable is still found under its "(deleted)" name.
	del := strings.ReplaceAll(smapsSample, "/usr/bin/hard phone", "/usr/bin/hp (deleted)")
	if ms, err := exeMappings(strings.NewReader(del), "/usr/bin/hp (deleted)"); err != nil || len(ms) != 2 {
		t.Errorf("deleted: %v %+v", err, ms)
	}
	if ms, err := exeMappings(strings.NewReader(smapsSample), "/usr/bin/hard"); err != nil || len(ms) != 0 {
		t.Errorf("a path's prefix matched: %v %+v", err, ms)
	}
}

// TestExeMappingsRefuses: a mapping without its Anonymous count cannot be
// judged safe to drop, and a malformed number is an error, not a zero.
func TestExeMappingsRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"no anonymous": "00400000-00c00000 r-xp 00000000 fd:01 1 /x\nRss: 10 kB\n",
		"bad number":   "00400000-00c00000 r-xp 00000000 fd:01 1 /x\nRss: ten kB\nAnonymous: 0 kB\n",
		"bad range":    "00c00000-00400000 r-xp 00000000 fd:01 1 /x\nRss: 10 kB\nAnonymous: 0 kB\n",
	} {
		if _, err := exeMappings(strings.NewReader(in), "/x"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
