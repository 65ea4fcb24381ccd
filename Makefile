# coffer build and test entry points. `make help` lists them.
GO      ?= go
BIN     := bin
FUZZTIME ?= 30s

.PHONY: help build test demo bench bench-quick stress fuzz clean

help:
	@echo "make build        build coffer-server, coffer-client, coffer-companion into bin/"
	@echo "make demo         keys, sealing, server and a client fetch, end to end"
	@echo "make test         go vet and the race-enabled test suite"
	@echo "make bench        coffer beside TLS 1.3 and mutual TLS (full run)"
	@echo "make bench-quick  the same in under a minute"
	@echo "make stress       the long adversarial runs"
	@echo "make fuzz         every fuzz target for FUZZTIME each (default $(FUZZTIME))"

# CGO_ENABLED=0: static binaries that start faster (the client's cold start
# is what boot scripts wait for); user and group names then come from
# /etc/passwd and /etc/group only, numeric ids always work.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

demo: build
	bash examples/demo.sh

bench: build
	$(BIN)/coffer-bench -server $(BIN)/coffer-server -client $(BIN)/coffer-client \
	    -companion $(BIN)/coffer-companion $(BENCHFLAGS)

bench-quick: build
	$(BIN)/coffer-bench -quick -server $(BIN)/coffer-server -client $(BIN)/coffer-client \
	    -companion $(BIN)/coffer-companion $(BENCHFLAGS)

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg || exit 1; \
	  done; \
	done

stress:
	$(GO) test -tags stress -race=false -count=1 -timeout 60m -v -run Stress ./cmd/coffer-server/hardening/

clean:
	rm -rf $(BIN)
