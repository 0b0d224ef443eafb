// Package resident gives the kernel back the pages of the program's own
// code that an idle process no longer touches.
//
// A static Go binary maps its whole text and read-only data from the page
// cache. Start-up (some two hundred package initialisers, flag and config
// parsing, the TLS handshakes of registration) touches code spread over all
// of it, and the kernel maps 64 KiB around every such fault, so an idle
// agent keeps most of its 20 MB executable resident although its steady
// state (timers, keepalives, re-registration) runs a small part of it.
// ReleaseCode drops the process's mappings of those pages and marks them
// for random access, so a page touched again comes back alone; the first
// release also evicts them from the page cache (those no other process
// maps), freeing what start-up used.
//
// Only mappings of the executable that hold no private copy are released
// (their "Anonymous" count in smaps is zero): a relocated read-only page
// of a position-independent build is a private copy, and dropping it would
// lose the relocation. Writable mappings, the heap and the stacks are never
// touched.
//
// Releaser decides when: after a quiet period in which the process faulted
// pages in. Imported by agent (idle_code_release, wired by package system)
// and pid1 (once the boot is judged).
package resident
