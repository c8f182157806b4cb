# Each target is a thin call into the real tools; see README.md and docs/testing.md.
.DEFAULT_GOAL := help
.PHONY: help install run test test-unit lint crd testenv testenv-down operator demo deploy bench bench-argo soak browser dashboard

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## Install taskjob and its test tools into .venv

run: $(STAMP) ## Run the ETL example locally, no cluster (prints 110)
	$(VENV)/bin/taskjob run examples/etl-pipeline.yaml

test: $(STAMP) testenv images browser ## Run every test: unit, the operator on the real control plane, real containers on its real node, the dashboard in Chromium
	$(PY) -m pytest tests -q

test-unit: $(STAMP) browser ## Run the tests that need no cluster (the dashboard's page tests need Chromium: make browser)
	$(PY) -m pytest tests -q -m 'not cluster and not docker'

lint: $(STAMP) ## ruff and mypy --strict on the package
	$(VENV)/bin/ruff check operator/taskjobs tests
	$(VENV)/bin/mypy operator/taskjobs

crd: $(STAMP) ## Regenerate the CRDs from the models (and the chart's copies)
	$(PY) -m taskjobs.crd --write
	$(PY) -m taskjobs.croncrd --write
	cp crds/taskjob.dev_taskjobs.yaml crds/taskjob.dev_crontaskjobs.yaml charts/taskjob-operator/crds/

bench: $(STAMP) ## Benchmarks B1-B4 on a private testenv, ~20 min (docs/performance.md); BENCH_ARGS=--quick
	$(PY) benchmarks/run.py $(BENCH_ARGS)

bench-argo: $(STAMP) testenv images ## B5: taskjob vs Argo Workflows (built from the Go proxy, bench only) on the real node, ~10 min
	$(PY) benchmarks/run.py --only B5 --kubeconfig .testenv/kubeconfig $(BENCH_ARGS)

soak: $(STAMP) testenv ## Long reliability run (docs/reliability.md): 50+ operator kills, API faults, 5,000 bad manifests
	TASKJOB_SOAK=1 $(PY) -m pytest tests/reliability -q

browser: ## Install Debian's chromium and chromium-driver for the dashboard's browser tests (once)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

dashboard: $(STAMP) testenv ## Serve the dashboard of the testenv on http://127.0.0.1:8765/
	KUBECONFIG=.testenv/kubeconfig $(VENV)/bin/taskjob dashboard

testenv: ## Build (once, cached) and start the local control plane; writes .testenv/kubeconfig
	@tests/testenv/up.sh

testenv-down: ## Stop the local control plane and remove .testenv/
	@tests/testenv/down.sh

operator: $(STAMP) testenv ## Run the operator against the testenv (Ctrl-C stops it)
	.testenv/bin/kubectl --kubeconfig .testenv/kubeconfig apply --server-side -f crds/
	KUBECONFIG=.testenv/kubeconfig $(VENV)/bin/taskjob operator

demo: $(STAMP) testenv ## Apply examples/diamond.yaml on the testenv with the operator running, and watch it
	@tests/testenv/demo.sh

.PHONY: images docker-up docker-down
images: ## Build taskjob-operator:0.1.0 and taskjob-runner:0.1.0 with Docker (CI's bases from Debian); load them onto the testenv's node
	@tests/images/build.sh

docker-up: ## Start the project's own Docker engine (DOCKER_HOST=unix:///run/taskjob-docker/docker.sock)
	@tests/images/docker.sh up

docker-down: ## Stop the project's Docker engine; leaves no process, mount, network link or cgroup behind
	@tests/images/docker.sh down

deploy: ## helm install the operator into the current kube context (kind/k3d/cloud)
	helm upgrade --install taskjob charts/taskjob-operator -n taskjob-system --create-namespace
