# Unit tests of the packages that need no devices, built for the phone's
# architectures and run under qemu-user (binfmt_misc is not assumed, so
# -exec names the emulator). Tests that re-execute their own binary (the
# kill-mid-write children) cannot run there and are skipped; the QEMU
# system tests cover those paths on arm64.
ARM_TEST_PKGS ?= ./agent ./agent/config ./agent/uptane ./agent/media ./agent/media/g722 ./agent/sip ./agent/store ./board \
	./cmd/hardphone ./cmd/hpctl ./crypto/credstore ./crypto/policy ./hal/audio ./hal/blockdev \
	./hal/kmod ./hal/services ./hal/sysctl ./hal/ubootenv ./hal/watchdog ./internal/resident ./update ./update/bundle
ARM_TEST_SKIP ?= ^(TestKilledMidPut|TestPowerCut|TestKilledBetweenFetchAndCommit|TestKilledAnywhere)$$

.PHONY: test-arm

test-arm: deps-qemu
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static -skip '$(ARM_TEST_SKIP)' $(ARM_TEST_PKGS)
	GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static -skip '$(ARM_TEST_SKIP)' $(ARM_TEST_PKGS)
