# hardphone build, test and demo. Everything runs as root on a Debian machine;
# `make deps` installs what is missing.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILDTIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) \
	-X github.com/hardphone/hardphone/system.buildTime=$(BUILDTIME)
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
PLATFORMS := linux/amd64 linux/arm64 linux/arm
export CGO_ENABLED=0

.PHONY: all build check deps check-targets test fuzz fuzz-short fuzz-selftest bench soak demo clean vet

all: build

build:
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "build $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch GOARM=7 $(GOBUILD) -o bin/$$os-$$arch/ ./cmd/... || exit 1; \
	done
	@ls -l bin/*/hardphone

deps:
	@./scripts/deps.sh

vet:
	$(GO) vet ./...

# The inner loop (under 2 minutes on 2 cores): every package's unit tests
# with -short, which skips the suites that start real peers in network
# namespaces (test/integration, test/fleetcrl), the fleet packages'
# end-to-end runs with real servers (hpfleet binaries, PostgreSQL,
# Chromium), the emulated phone (test/qemu) and most power-cut points; no
# deps, no builds for other platforms, no fuzzing.
check:
	$(GO) vet ./...
	$(GO) test -short -count=1 ./...

# Unit tests, the integration suite against real Kamailio and baresip in a
# private network namespace (the test binaries create it themselves), the
# QEMU short slice (first boot, zero-touch first boot, good update, ALSA
# loopback), the device-free unit tests
# again for arm64 and armv7 under qemu-user, and a short fuzz slice of every
# parser at a trust boundary.
# kernel and kernel-audio run first, in the host's network namespace: they
# fetch the Debian kernels (the board's, and the generic one the ALSA
# loopback scenario boots) into .cache/ (the QEMU tests build their images in a private
# namespace with no way out).
test: deps vet build kernel kernel-audio
	$(GO) test -count=1 ./...
	$(MAKE) test-arm
	$(MAKE) fuzz-short

# The slice make test runs: each target its //fuzz:budget executions (a count
# has no wall-clock deadline to race on a loaded machine), after a self-test
# that proves the gate still fails on a planted finding.
fuzz-short: fuzz-selftest
	@GO=$(GO) ./scripts/fuzz.sh

fuzz-selftest:
	@GO=$(GO) ./scripts/fuzz_selftest.sh

# The long run: every target for FUZZTIME (durations; see scripts/fuzz.sh for
# how Go 1.26's deadline race is told apart from a finding).
FUZZTIME ?= 5m
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

# Every benchmark prints its number beside a reference measured in the same run.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./agent/media/ ./agent/media/g722/ ./hal/tpm/ ./crypto/credstore/ ./agent/events/ ./fleet/attest/
	$(GO) test -run '^$$' -bench BenchmarkPulseFrame -benchmem ./hal/audio/
	$(GO) test -run '^$$' -bench BenchmarkPulseRoundTrip -benchtime 20x ./hal/audio/
	$(GO) test -run '^$$' -bench BenchmarkInstall -benchtime 3x ./update/
	$(GO) test -run '^$$' -bench '^Benchmark(CallSetup|IdleRSS)$$' -benchtime 10x ./test/integration/
	$(GO) test -run '^$$' -bench '^BenchmarkAudio(Latency|Intelligibility|CPU)$$' -benchtime 1x -timeout 30m ./test/integration/
	$(GO) test -run '^$$' -bench . -benchtime 2s ./fleet/store/boltstore/ ./fleet/store/pgstore/
	$(GO) test -run '^$$' -bench . -benchtime 1000x -timeout 30m ./cmd/hpfleet/
	$(GO) test -run '^$$' -bench . -benchtime 32x -timeout 30m ./agent/provision/
	$(GO) test -run '^$$' -bench . -benchmem ./fleet/anomaly/
	$(GO) test -run '^$$' -bench . -benchtime 200x -timeout 30m ./fleet/director/ ./agent/uptane/
	$(GO) test -run '^$$' -bench '^BenchmarkFleetConfig$$' -benchtime 5x -timeout 30m ./test/integration/
	$(GO) test -run '^$$' -bench . -benchtime 20x ./fleet/adminauth/

# Long suites: 500 power cuts during installs (make test runs 50); two
# hpfleet replicas on PostgreSQL with 12 phones through 10 rounds of SIGKILL
# and restart (make test: 3 phones, one round).
soak: deps
	HARDPHONE_SOAK=1 $(GO) test -count=1 -timeout 60m -run 'TestPowerCut$$' -v ./update/
	HARDPHONE_SOAK=1 $(GO) test -count=1 -timeout 60m -run 'TestHPFleetReplicas$$' -v ./agent/provision/

# Kamailio with generated PKI, two hardphone binaries over mutual TLS, one SRTP
# call each way of keying (SDES, DTLS-SRTP), a tone across, the summary line.
demo: deps build
	@mkdir -p out; rc=0; $(GO) test -count=1 -run '^TestDemo$$' -v ./test/integration/ > out/demo.log 2>&1 || rc=$$?; \
		grep -E '^demo|^ *(--- |ok|FAIL|PASS)' out/demo.log; \
		[ $$rc -eq 0 ] || { echo "demo failed; full log in out/demo.log"; tail -50 out/demo.log; }; exit $$rc

# Board targets (image, qemu, qemu-test) live in mk/.
-include mk/*.mk

# Every README target a user runs alone (demo, test, qemu-test, qemu, bench,
# image), each from a fresh clone with an empty .cache/ (long: it runs make
# test and make qemu-test among them). CHECK_TARGETS="test image" picks some.
check-targets:
	./scripts/check_targets.sh $(CHECK_TARGETS)

clean:
	rm -rf bin out
