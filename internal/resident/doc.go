// Package resident gives the kernel back the pages of the program's own
// code that an idle process no longer touches.
//
// A static Go binary maps its whole text and read-only data from the page
// cache. Start-up (some two hundred package initialisers, flag and config
// parsing, the TLS handshakes of registration) touches code spread over all
// of it, and the kernel maps 64 KiB around every such fault, so an idle
// agent keeps most of its 20 MB executable resident although its steady
// state (timers, keepalives, re-registration) runs a small part of it.
// ReleaseCode drops the process's mappings of those pages: they stay in
// the page cache, marked for reclaim first, and a page the process touches
// again comes back with a minor fault and no I/O.
//
// Only mappings of the executable that hold no private copy are released
// (their "Anonymous" count in smaps is zero): a relocated read-only page
// of a position-independent build is a private copy, and dropping it would
// lose the relocation. Writable mappings, the heap and the stacks are never
// touched.
//
// The agent calls it when it has been idle for a while (package agent,
// wired by package system); PID 1 after boot (package pid1).
package resident
