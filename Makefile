# narayanad: `make run` starts a demo daemon on SQLite, `make test` runs every test on
# SQLite and PostgreSQL.
GO            ?= go
BIN           := bin/narayanad
DEMO_DB       ?= sqlite:demo.db
LISTEN        ?= 127.0.0.1:8080
PG_TEST_DSN_DEFAULT := postgres://narayana:narayana@127.0.0.1:5432/narayana_test?sslmode=disable
PG_TEST_DSN   ?= $(PG_TEST_DSN_DEFAULT)
VERSION       := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build run test test-pg-setup lint bench clean install deb

# make install: the binary, the sample settings (kept when present), the systemd unit and
# the operator's docs. DESTDIR stages it (packagers, the packaging test).
PREFIX        ?= /usr
SYSCONFDIR    ?= /etc
UNITDIR       ?= /lib/systemd/system
# The .deb: nfpm at a pinned version, run through the Go module proxy.
NFPM_VERSION  ?= v2.48.0
DEB_VERSION   ?= 0.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)+g$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
DEB_ARCH      ?= $(shell $(GO) env GOARCH)
DIST          ?= dist

build:
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BIN) ./cmd/narayanad

run: build
	$(BIN) demo --db $(DEMO_DB) --listen $(LISTEN)
	$(BIN) serve --db $(DEMO_DB) --listen $(LISTEN)

# Every storage test runs on both databases. With the default PG_TEST_DSN, `make test`
# first starts the machine's PostgreSQL cluster and creates the role and database
# (.ci/postgres, idempotent, needs root); set PG_TEST_DSN to use another server.
test: $(if $(filter $(PG_TEST_DSN_DEFAULT),$(PG_TEST_DSN)),test-pg-setup)
	NARAYANA_TEST_POSTGRES='$(PG_TEST_DSN)' $(GO) test -race -count=1 ./...

test-pg-setup:
	bash .ci/postgres

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# End to end (bench/cmd/narabench): a data set, the daemon on loopback, load at 1, 16, 64 and
# 256 clients on SQLite, then on PostgreSQL when NARAYANA_BENCH_POSTGRES (default
# PG_TEST_DSN) is reachable; prints a summary and writes docs/BENCHMARKS.md. Under 5
# minutes; BENCH_QUICK=1 (scaled-down data set, short runs) under one. The in-process
# hot spots: go test -run '^$$' -bench . -benchmem ./billing/...
bench: build
	$(GO) build -o bin/narabench ./bench/cmd/narabench
	NARAYANA_BENCH_POSTGRES="$${NARAYANA_BENCH_POSTGRES-$(PG_TEST_DSN)}" bin/narabench -bin $(BIN) \
		$(if $(filter 1 yes true,$(BENCH_QUICK)),-quick -command 'make bench BENCH_QUICK=1') -out docs/BENCHMARKS.md

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/narayanad
	test -e $(DESTDIR)$(SYSCONFDIR)/narayana/narayana.conf || \
		install -D -m 0644 contrib/narayana.conf $(DESTDIR)$(SYSCONFDIR)/narayana/narayana.conf
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/bin/narayanad|$(PREFIX)/bin/narayanad|; s|/etc/narayana/|$(SYSCONFDIR)/narayana/|' \
		contrib/systemd/narayanad.service > $(DESTDIR)$(UNITDIR)/narayanad.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/narayanad.service
	install -D -m 0644 docs/OPERATIONS.md $(DESTDIR)$(PREFIX)/share/doc/narayanad/OPERATIONS.md
	install -D -m 0644 contrib/grafana/narayanad.json $(DESTDIR)$(PREFIX)/share/doc/narayanad/grafana-dashboard.json

deb: build
	mkdir -p $(DIST)
	VERSION='$(DEB_VERSION)' ARCH='$(DEB_ARCH)' $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) \
		package --config contrib/nfpm.yaml --packager deb --target $(DIST)/

clean:
	rm -rf bin dist demo.db demo.db-shm demo.db-wal
