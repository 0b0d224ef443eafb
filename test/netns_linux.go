package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// RunInNetns runs the tests of m inside a throwaway network namespace and
// exits with their exit code; call it from TestMain.
//
// Outside the namespace it re-executes the test binary with CLONE_NEWNET, so
// the whole test process, its goroutines and every peer it starts share one
// private loopback: nothing collides with ports on the host and nothing
// outlives the run. Inside it brings lo up and calls m.Run. Without root it
// says why and runs the tests un-namespaced (they skip), or exits non-zero
// under CI=true.
func RunInNetns(m *testing.M) {
	if InNetns() {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(os.Stderr, "test.RunInNetns: %v\n", err)
			os.Exit(2)
		}
		os.Exit(m.Run())
	}
	code, err := reexecInNetns()
	if err == nil {
		os.Exit(code)
	}
	fmt.Fprintf(os.Stderr, "test.RunInNetns: no private network namespace, tests needing one will skip: %v\n", err)
	if inCI() {
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// reexecInNetns runs this test binary again in a new network namespace and
// returns its exit code. An error means the child could not be started.
func reexecInNetns() (int, error) {
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("CLONE_NEWNET needs root, running as uid %d", os.Geteuid())
	}
	// Pdeathsig fires when the forking thread exits; keep this goroutine on
	// its thread until os.Exit so the child only dies with us.
	runtime.LockOSThread()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s in new netns: %w", os.Args[0], err)
	}
	// Forward the signals go test and a terminal send, so the child can print
	// its goroutines on SIGQUIT and clean up on SIGINT.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	go func() {
		for s := range sigs {
			// The child may already have exited; nothing to do then.
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "test.RunInNetns: test process killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, fmt.Errorf("wait for test process: %w", err)
	}
	return 0, nil
}

// loopbackUp sets IFF_UP on lo with SIOCSIFFLAGS, which a new network
// namespace leaves down.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer syscall.Close(fd)
	// struct ifreq: 16 bytes of name, then a union whose first member here
	// is short ifr_flags.
	var ifr [40]byte
	copy(ifr[:], "lo")
	if err := ioctl(fd, syscall.SIOCGIFFLAGS, &ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	flags := *(*uint16)(unsafe.Pointer(&ifr[16]))
	*(*uint16)(unsafe.Pointer(&ifr[16])) = flags | syscall.IFF_UP | syscall.IFF_RUNNING
	if err := ioctl(fd, syscall.SIOCSIFFLAGS, &ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

func ioctl(fd int, req uintptr, ifr *[40]byte) error {
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
