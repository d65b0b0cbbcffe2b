# blobfs: see README.md. Everything runs on this machine; tests and the
# demo talk only to Azurite and the IMDS/ARM emulator on 127.0.0.1.

GO      ?= go
PREFIX  ?= /usr/local
SBINDIR ?= /sbin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
AZURITE := blob/blobtest/node_modules/.bin/azurite-blob

.PHONY: all deps build test demo install uninstall bench readme clean

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

# Every test, none skipped: a missing Azurite or /dev/fuse is a failure here.
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

# The binary, and the mount(8) helper so that `mount -t fuse.blobfs` and
# /etc/fstab work.
install: build
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

# Regenerates the README's configuration reference from the settings table.
readme: build
	bin/blobfs config-reference > .readme-config.tmp
	awk 'BEGIN{skip=0} \
	  /<!-- BEGIN CONFIG REFERENCE/ {print; while ((getline line < ".readme-config.tmp") > 0) print line; skip=1; next} \
	  /<!-- END CONFIG REFERENCE/ {skip=0} !skip {print}' README.md > README.md.tmp
	mv README.md.tmp README.md
	rm -f .readme-config.tmp

clean:
	rm -rf bin
