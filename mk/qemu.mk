# The emulated desk phone (board qemu-arm64): Debian's U-Boot, A/B slots,
# a swtpm TPM, QEMU's user network. Included by the top Makefile.
#
#   make kernel      fetch the board's Debian kernel into $(QEMU_CACHE): the only
#                    step that needs the network, run from the host's namespace
#                    before anything that builds images inside a test namespace
#   make kernel-audio  the same for the generic arm64 kernel the ALSA loopback
#                    scenario boots (the board's cloud kernel has no sound)
#   make image       bin/linux-arm64/hardphone, then hpctl image build into $(IMAGE_DIR)
#                    (a new phone: the next make qemu provisions it)
#   make qemu        boot that image (built first if there is none), serial
#                    console on the terminal, with a Kamailio on 127.0.0.1:5061;
#                    the phone's disk and TPM persist from one run to the next
#   make qemu-test   every QEMU scenario, one at a time (test/qemu)
#   make deps-qemu   the Debian packages these need

IMAGE_BOARD ?= qemu-arm64
IMAGE_DIR   ?= out/$(IMAGE_BOARD)
QEMU_CACHE  ?= .cache/hpctl
QEMU_TEST_TIMEOUT ?= 30m
# The kernel TestALSALoopback boots: Debian's generic arm64 flavour has
# snd-aloop (CONFIG_SND_ALOOP=m) but no TIS TPM driver, so it cannot run the
# phone itself, only that scenario's one-shot initramfs.
QEMU_AUDIO_KERNEL ?= linux-image-arm64

.PHONY: kernel kernel-audio image qemu qemu-test deps-qemu

# scripts/deps.sh lists them (qemu-system-arm qemu-user-static u-boot-qemu
# u-boot-tools libubootenv-tool swtpm swtpm-tools mtools e2fsprogs
# dosfstools cpio fdisk kmod socat) and installs only what is missing.
deps-qemu:
	@./scripts/deps.sh

# One shared fetch: image, test and qemu-test all start from it, and the
# builds after it run offline (hpctl image build --offline).
kernel: deps-qemu
	$(GOBUILD) -o bin/host/hpctl ./cmd/hpctl
	bin/host/hpctl image kernel --board $(IMAGE_BOARD) --cache $(QEMU_CACHE)

kernel-audio: kernel
	bin/host/hpctl image kernel --board $(IMAGE_BOARD) --cache $(QEMU_CACHE) --package $(QEMU_AUDIO_KERNEL)

image: kernel
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o bin/linux-arm64/hardphone ./cmd/hardphone
	bin/host/hpctl image build --board $(IMAGE_BOARD) --hardphone bin/linux-arm64/hardphone \
		--cache $(QEMU_CACHE) --offline -o $(IMAGE_DIR)

$(IMAGE_DIR)/image.json:
	$(MAKE) image

# The test binaries run QEMU inside a private network namespace, where the
# guest's only way out (10.0.2.100:5061) reaches the Kamailio they start, and
# build their images there offline from the kernel make kernel fetched.
qemu: deps-qemu $(IMAGE_DIR)/image.json
	HARDPHONE_QEMU_IMAGE=$(abspath $(IMAGE_DIR)) $(GO) test -count=1 -timeout 0 -run '^TestInteractive$$' -v ./test/qemu/

qemu-test: kernel kernel-audio
	HARDPHONE_QEMU_FULL=1 $(GO) test -count=1 -p 1 -timeout $(QEMU_TEST_TIMEOUT) -v ./test/qemu/
