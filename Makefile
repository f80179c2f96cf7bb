# Depot Command Central
#   make run    build and start the demo depot at http://localhost:8080
#   make test   the whole suite (installs Chromium and mosquitto clients if missing)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X 'main.Version=$(VERSION)'
GO      ?= go
UI_SRC  := $(wildcard ui/web/src/*) $(wildcard ui/web/src/driver/*) ui/web/build.mjs ui/web/package-lock.json
# A count, not a duration: Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" failure when a duration runs out while a worker
# is busy (go.dev/issue/75804, fixed in Go 1.27), which a loaded CI machine
# hits. A count has no deadline to race. About 2–15 s per target here.
FUZZTIME ?= 20000x
# The two fuzzers whose every input is a round trip through a real broker
# on a socket (FuzzRawMQTT, FuzzWill) run 100–180 inputs a second here:
# 20,000 took 2 min each, half of `make test`'s fuzzing. They get fewer in
# `make test` and the same long runs as the rest in fuzz-long and soak.
FUZZTIME_E2E ?= 4000x

.PHONY: all build ui run test deps vet unit webtest fuzz fuzz-long soak bench bench-load bench-fleet fleet-demo clean deb deb-systemd FORCE

all: build

build: bin/depot

bin/depot: ui/dist/index.html $(shell find . -name '*.go' -not -path './ui/web/*') go.mod go.sum
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/depot

# The dashboard bundle is built from the lock file, never committed.
ui/web/node_modules/.package-lock.json: ui/web/package-lock.json
	cd ui/web && npm ci --no-audit --no-fund
	@touch $@

ui/dist/index.html: ui/web/node_modules/.package-lock.json $(UI_SRC)
	cd ui/web && npm run --silent build

ui: ui/dist/index.html

run: build
	./bin/depot serve --demo --data ./data/demo --http-addr :8080

# The NATS server of the fleet demo: the real one, from the module cache.
bin/nats-server: go.mod go.sum
	$(GO) build -o $@ github.com/nats-io/nats-server/v2

# The fleet's load run: N demo depots into a three-node cluster, one hq,
# 10 SSE dashboards; event → dashboard latency per N (README, Fleet).
bench-fleet:
	DEPOT_FLEET_BENCH=1 $(GO) test -count=1 -run '^(TestFleetLoad|TestForwarderFootprint)$$' -v -timeout 30m ./cmd/depot

# Three NATS nodes, three demo depots and two depot hq on this machine
# (docs/fleet.md); the script says what to open and what to kill.
fleet-demo: build bin/nats-server
	scripts/fleet-demo.sh

deps:
	@scripts/deps.sh

# Debian packages for the depot's box: dist/depot_<version>_<arch>.deb
# (packaging/nfpm.yaml; docs/install.md). The binary is static (no cgo),
# cross-built for each architecture; the version is git describe's, made
# Debian-valid by scripts/deb-version.sh. `make -j2 deb` builds nfpm and
# the architectures side by side. Reproducible: every file in a package is
# dated SOURCE_DATE_EPOCH, the last commit's time, and the gzipped
# changelog and manual page carry no name or time of their own (-9n).
DEB_ARCHES   ?= amd64 arm64
NFPM_VERSION  = v2.45.2
DEB_VERSION   = $(shell scripts/deb-version.sh "$(VERSION)")
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

bin/nfpm:
	GOBIN=$(abspath bin) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

deb: $(foreach a,$(DEB_ARCHES),dist/depot_$(DEB_VERSION)_$(a).deb)

# Always rebuilt (go build knows what changed); nfpm.yaml names the binary
# at dist/stage/depot, so each architecture gets a copy naming its own.
dist/stage/%/depot: ui/dist/index.html FORCE
	GOOS=linux GOARCH=$* CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $@ ./cmd/depot
	sed 's|src: dist/stage/depot$$|src: dist/stage/$*/depot|' packaging/nfpm.yaml >dist/stage/$*/nfpm.yaml

# The Debian changelog (one entry: this version, this commit) and the
# manual page (the help of a build of depot for this machine, which can
# run it), the same for every architecture.
dist/stage/changelog.gz: FORCE
	@mkdir -p $(@D)
	scripts/deb-changelog.sh "$(DEB_VERSION)" "$(SOURCE_DATE_EPOCH)" >$(@:.gz=)
	gzip -9nf $(@:.gz=)

dist/stage/host/depot: ui/dist/index.html FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/depot

dist/stage/depot.1.gz: dist/stage/host/depot scripts/deb-man.sh
	scripts/deb-man.sh dist/stage/host/depot "$(DEB_VERSION)" "$(SOURCE_DATE_EPOCH)" >$(@:.gz=)
	gzip -9nf $(@:.gz=)

dist/depot_$(DEB_VERSION)_%.deb: dist/stage/%/depot dist/stage/changelog.gz dist/stage/depot.1.gz bin/nfpm
	DEPOT_ARCH=$* DEPOT_DEB_VERSION=$(DEB_VERSION) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
		bin/nfpm package --config dist/stage/$*/nfpm.yaml --packager deb --target $@

FORCE:

# The amd64 package under a real systemd, in a systemd-nspawn container of a
# minimal Debian (root; a few minutes the first time; not part of make test).
deb-systemd: deb
	scripts/deb-systemd.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit: ui
	$(GO) test -race -count=1 -timeout 8m ./...

# The dashboard's ordering logic, with Node's own test runner.
webtest: ui/web/node_modules/.package-lock.json
	cd ui/web && node --test src/

# Short fuzz runs of every parser of outside input, and of the encoders
# that write outside strings into events.
fuzz: ui
	$(GO) test -run='^$$' -fuzz='^FuzzParseFix$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeFast$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzParseDriverTopic$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzParseSnapshots$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzParseOwnTracks$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzParseOsmAnd$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzJSONEncoding$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzPresencePayload$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzClientID$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzReadEventHead$$' -fuzztime=$(FUZZTIME) ./bridge
	$(GO) test -run='^$$' -fuzz='^FuzzTrustedProxies$$' -fuzztime=$(FUZZTIME) ./ui
	$(GO) test -run='^$$' -fuzz='^FuzzParseTypes$$' -fuzztime=$(FUZZTIME) ./ui
	$(GO) test -run='^$$' -fuzz='^FuzzExportWindow$$' -fuzztime=$(FUZZTIME) ./ui
	$(GO) test -run='^$$' -fuzz='^FuzzTargetValidate$$' -fuzztime=$(FUZZTIME) ./push
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeBlock$$' -fuzztime=$(FUZZTIME) ./storage
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeEventBlock$$' -fuzztime=$(FUZZTIME) ./storage
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) ./ui/auth
	$(GO) test -run='^$$' -fuzz='^FuzzAuthenticateMQTT$$' -fuzztime=$(FUZZTIME) ./ui/auth
	$(GO) test -run='^$$' -fuzz='^FuzzLoginBody$$' -fuzztime=$(FUZZTIME) ./cmd/depot
	$(GO) test -run='^$$' -fuzz='^FuzzRawMQTT$$' -fuzztime=$(FUZZTIME_E2E) ./cmd/depot
	$(GO) test -run='^$$' -fuzz='^FuzzAPI$$' -fuzztime=$(FUZZTIME) ./cmd/depot
	$(GO) test -run='^$$' -fuzz='^FuzzWill$$' -fuzztime=$(FUZZTIME_E2E) ./cmd/depot

fuzz-long:
	$(MAKE) fuzz FUZZTIME=5m FUZZTIME_E2E=5m

test: deps vet webtest fuzz unit

clean:
	rm -rf bin dist ui/web/node_modules
	find ui/dist -mindepth 1 ! -name .keep -delete

# Long reliability runs (not part of `make test`): repeated SIGKILLs under
# load, and the fuzzers for longer.
soak: ui
	$(GO) test -run='^TestSIGKILLLosesNoAcknowledgedFix$$' -count=25 -v ./cmd/depot
	$(MAKE) fuzz FUZZTIME=2m FUZZTIME_E2E=2m

# Go micro-benchmarks of the hot paths (not part of `make test`).
bench: ui
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# Every load of the README's Performance table, three runs each, against a
# fresh appliance on this machine, and the 1,000 × 10 Hz load sustained for
# 150 s, once (about 25 minutes; one JSON line per run).
bench-load: build
	for i in 1 2 3; do scripts/bench-load.sh 35 1 10 20s --json --baseline; done
	for i in 1 2 3; do scripts/bench-load.sh 1000 10 10 20s --json --baseline; done
	for r in 2 4 6 8; do scripts/bench-load.sh 1000 $$r 10 20s --json --baseline; done
	for i in 1 2 3; do scripts/bench-load.sh 5000 0 1 40s --json; done
	scripts/bench-load.sh 1000 10 10 150s --json
