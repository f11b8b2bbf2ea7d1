# narayanad: `make run` starts a demo daemon on SQLite, `make test` runs every test on
# SQLite and PostgreSQL.
GO            ?= go
BIN           := bin/narayanad
DEMO_DB       ?= sqlite:demo.db
LISTEN        ?= 127.0.0.1:8080
PG_TEST_DSN   ?= postgres://narayana:narayana@127.0.0.1:5432/narayana_test?sslmode=disable
VERSION       := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build run test test-pg-setup lint bench clean

build:
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BIN) ./cmd/narayanad

run: build
	$(BIN) demo --db $(DEMO_DB) --listen $(LISTEN)
	$(BIN) serve --db $(DEMO_DB) --listen $(LISTEN)

# Every storage test runs on both databases: PostgreSQL must be reachable at PG_TEST_DSN
# (`make test-pg-setup` starts the machine's cluster and creates the role and database).
test:
	NARAYANA_TEST_POSTGRES='$(PG_TEST_DSN)' $(GO) test -race -count=1 ./...

test-pg-setup:
	bash .ci/postgres

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

bench:
	NARAYANA_TEST_POSTGRES='$(PG_TEST_DSN)' $(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin demo.db demo.db-shm demo.db-wal
