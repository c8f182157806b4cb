# Each target is a thin call into a script; see docs/testing.md.
.DEFAULT_GOAL := help
.PHONY: help testenv testenv-down

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

testenv: ## Build (once, cached) and start the local control plane; writes .testenv/kubeconfig
	@tests/testenv/up.sh

testenv-down: ## Stop the local control plane and remove .testenv/
	@tests/testenv/down.sh
