package board

// desktop is hardphone as a softphone on a PC: an ordinary process under
// the desktop's own init, no partitions, no updater, no PID 1 duties. A
// TPM is optional and named in the config (/dev/tpmrm0, a swtpm, or an
// explicit software key file, which status reports as weaker).
func desktop() *Board {
	return &Board{
		Name:       "desktop",
		Compatible: "hardphone-desktop",
		GOARCH:     "amd64",
		// A desktop's own modprobe.d takes the policy's module blocks when
		// the user gives it one; none is required.
		ModprobeFile: "/etc/modprobe.d/hardphone-lockdown.conf",
	}
}
