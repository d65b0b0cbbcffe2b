# blobfs: see README.md and docs/. Everything runs on this machine; tests and the
# demo talk only to Azurite and the IMDS/ARM emulator on 127.0.0.1.

GO      ?= go
PREFIX  ?= /usr/local
SBINDIR ?= /sbin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
AZURITE := blob/blobtest/node_modules/.bin/azurite-blob

.PHONY: all deps build test demo sandbox sandbox-stop install uninstall bench readme clean

all: build

# Go modules and the pinned Azurite (3.35.0: later releases need Node >= 21).
deps: $(AZURITE)
	$(GO) mod download

$(AZURITE): blob/blobtest/package.json blob/blobtest/package-lock.json
	npm ci --prefix blob/blobtest --no-audit --no-fund
	@touch $@

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/blobfs ./cmd/blobfs
	$(GO) build -o bin/blobfs-emulator ./cmd/blobfs-emulator

# Every package's tests; a missing Azurite is a failure here, not a skip.
# Some tests still skip (no rsync or sqlite3, not root): docs/DEVELOPMENT.md.
# -p 2: FUSE- and Azurite-heavy packages would starve each other on 2 cores.
# The packages with concurrency run under the race detector; the daemon's
# end-to-end tests (cmd/) without it, to stay within 15 minutes. Broken
# invariants of the fs core panic instead of being logged.
RACE_PKGS := ./fs/... ./blob/... ./auth/...
test: $(AZURITE)
	$(GO) vet ./...
	BLOBFS_REQUIRE_AZURITE=1 BLOBFS_CHECK_INVARIANTS=1 $(GO) test -race -p 2 -timeout 10m $(RACE_PKGS)
	BLOBFS_REQUIRE_AZURITE=1 BLOBFS_CHECK_INVARIANTS=1 $(GO) test -p 2 -timeout 10m ./cmd/...

# Azurite + the IMDS/ARM emulator on 127.0.0.1, a mount through the
# managed-identity path, cp and cat through it; everything stopped after.
demo: build $(AZURITE)
	cmd/blobfs/demo.sh

# Azurite and the IMDS/ARM emulator on fixed loopback ports (10000, 40342,
# 40343), a container 'sandbox', and the blobfs mount line to paste; they
# keep running until make sandbox-stop.
sandbox: build $(AZURITE)
	cmd/blobfs/sandbox.sh start

sandbox-stop:
	cmd/blobfs/sandbox.sh stop

# The binary, and the mount(8) helper so that `mount -t fuse.blobfs` and
# /etc/fstab work. It installs what make build built and does not build:
# `sudo make install` then works where Go is only on the user's PATH.
install:
	@test -x bin/blobfs || { echo "bin/blobfs is not built: run 'make build' first (as yourself), then 'sudo make install'" >&2; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SBINDIR)
	install -m 0755 bin/blobfs $(DESTDIR)$(PREFIX)/bin/blobfs
	ln -sf $(PREFIX)/bin/blobfs $(DESTDIR)$(SBINDIR)/mount.fuse.blobfs

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mount.fuse.blobfs $(DESTDIR)$(PREFIX)/bin/blobfs

# Issue 6's performance table, medians of 5 rounds at full size (about
# 4 to 8 minutes a round on a 2-core machine); BENCHFLAGS=-quick for one
# small round, or e.g. BENCHFLAGS="-rounds 3 -only read,write".
bench: $(AZURITE)
	$(GO) run ./cmd/blobfs-bench $(BENCHFLAGS)

# Regenerates the configuration reference (docs/CONFIGURATION.md) from the
# settings table.
readme: build
	bin/blobfs config-reference > .readme-config.tmp
	awk 'BEGIN{skip=0} \
	  /<!-- BEGIN CONFIG REFERENCE/ {print; while ((getline line < ".readme-config.tmp") > 0) print line; skip=1; next} \
	  /<!-- END CONFIG REFERENCE/ {skip=0} !skip {print}' docs/CONFIGURATION.md > docs/CONFIGURATION.md.tmp
	mv docs/CONFIGURATION.md.tmp docs/CONFIGURATION.md
	rm -f .readme-config.tmp

clean:
	rm -rf bin
