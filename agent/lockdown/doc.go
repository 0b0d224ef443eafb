// Package lockdown is the phone's lockdown policy: the model (a TOML schema,
// parsed into an immutable, validated Policy; see README-policy.md), the
// planner that works out which listeners, ports, services, modules and
// sysctls must change, the enforcers that change them through hal/nft,
// hal/services and hal/sysctl, and the checker that proves the running
// system matches: every listening socket from /proc/net with its process,
// every denied service, every sysctl, the blocked modules and the live
// ruleset. It also keeps RTP pinholes per call, and gives the agent the
// ListenConfig and Dialer its sockets must use.
//
// Threat: services and ports nobody meant to leave on (a web UI, telnet,
// SSH, TFTP, a debug port) and drift after the fact. A malformed or
// contradictory policy is refused with the line that is wrong before
// anything is touched; every listener opens only to its allowed sources;
// media ports open only per call, to that call's peer; and the check runs
// periodically so a rogue listener or a re-enabled service is reported as a
// security event.
//
// Imported by agent (the enforcer it is handed) and system (which builds it
// over hal/nft, hal/services and hal/sysctl, the parts it is given);
// agent/media never imports it (the agent passes pinholes on
// from call events).
package lockdown
