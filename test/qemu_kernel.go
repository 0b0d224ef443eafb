package test

import (
	"io"
	"os"
	"testing"
)

// QEMUKernelConfig is one boot of a kernel and an initramfs straight from
// QEMU (-kernel, -initrd), on the qemu-arm64 board's machine and CPU but
// without U-Boot, disk, TPM or network: for a scenario that needs a kernel
// the board's image cannot run (the ALSA loopback needs a kernel with sound,
// which has no TIS TPM driver).
type QEMUKernelConfig struct {
	// Kernel is the arm64 Image; Initrd the initramfs whose /init is
	// PID 1; Append the kernel command line.
	Kernel, Initrd, Append string
	// Dir holds the console log.
	Dir string
	// Echo, when not nil, gets every console line as it arrives.
	Echo io.Writer
}

// StartQEMUKernel boots c.Kernel with c.Initrd under QEMU's virt machine
// and returns the running QEMU; its console lines are read as StartQEMU's
// are. It skips (fails under CI=true) when QEMU is missing. QEMU gets no
// network device at all (-nic none), so it needs no network namespace.
func StartQEMUKernel(t testing.TB, c QEMUKernelConfig) *QEMU {
	t.Helper()
	qemu := requireBinary(t, "qemu-system-aarch64")
	for _, f := range []string{c.Kernel, c.Initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("StartQEMUKernel: %v", err)
		}
	}
	args := []string{"-M", "virt", "-cpu", "cortex-a53", "-smp", "1", "-m", "512",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none",
		// A guest power-off ends QEMU, and so does a reset: the scenario
		// judges the guest by its console, not by QEMU's exit code.
		"-no-reboot",
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.Append,
	}
	return startQEMUProcess(t, qemu, args, c.Dir, c.Echo, nil)
}
