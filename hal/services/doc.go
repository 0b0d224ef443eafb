// Package services finds, stops and disables OS services through whichever
// init system the root filesystem carries: systemd (units masked, as
// `systemctl mask` does), sysvinit (rc.d start links turned into kill links,
// as `update-rc.d disable` does) and BusyBox init (S?? scripts renamed out of
// rcS's reach). It reports what it cannot control, such as a daemon that
// /etc/inittab respawns, instead of pretending.
//
// Threat: a forgotten daemon (telnetd, dropbear, httpd, tftpd) listening on
// the phone. Service names are checked against a strict grammar before they
// become paths or arguments, and processes are found through /proc by both
// comm and executable name.
//
// Like all of hal/ it holds mechanism, not policy: which services come from
// agent/lockdown. It imports nothing of hardphone's; system builds it and
// agent/lockdown uses it.
package services
