# kadlan Makefile. `make help` lists targets.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/kadlan

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build bin/kadlan
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kadlan

.PHONY: help build
