# Edgewise: the one entry point for building, running and testing.
GO        ?= go
BIN       := bin/edgewise
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
ARGS      ?=
FUZZTIME  ?= 20s
.PHONY: all build serve test test-deps unit e2e bench fuzz vet clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/edgewise

## serve: build and run the server with its embedded defaults (ARGS="--mqtt-addr :11883" to change)
serve: build
	./$(BIN) serve $(ARGS)

## test: everything CI runs: vet, unit and integration tests with -race, end-to-end tests
test: test-deps vet
	$(GO) test -race -count=1 -timeout 20m ./...
	@# The gomqtt conformance client races with itself, so its suite skips
	@# under -race; run it once more without.
	$(GO) test -count=1 -run '^TestConformance$$' ./internal/broker/

## test-deps: install what the tests need that Go does not fetch (Debian packages)
test-deps:
	./scripts/install-test-deps.sh

unit:
	$(GO) test -race -count=1 -short ./...

e2e: test-deps
	$(GO) test -race -count=1 -v ./test/e2e/

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: run every fuzz target in the module for FUZZTIME each
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

clean:
	rm -rf bin
