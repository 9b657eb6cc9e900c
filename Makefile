# The habits: make install, run, test, lint, protos, bench. See README.md.
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
CONFIG    ?= $(CURDIR)/.firebox
EXECUTOR  ?= 127.0.0.1:50051
AGENT     ?= 127.0.0.1:50052

.PHONY: install run test lint protos docs ts-client release-protos bench bench-workspaces chaos e2e images docker clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start a Docker engine if none answers (installing Debian's docker.io when missing).
docker:
	bash scripts/start-docker.sh

## Build the default workspace image locally (no registry needed).
images:
	bash scripts/build-images.sh

## Start both services in the foreground; Ctrl-C stops them.
run: install
	@bash scripts/run.sh "$(CONFIG)" "$(EXECUTOR)" "$(AGENT)"

test: install
	bash scripts/test-env.sh
	$(VENV)/bin/pytest -q -rs $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) scripts/check-import-cycles.py
	$(PY) scripts/gen-settings-docs.py --check
	$(VENV)/bin/buf lint
	bash scripts/check-breaking.sh
	bash scripts/check-protos.sh
	bash scripts/check-ts-client.sh

## Rewrite the settings tables of docs/executor.md and docs/agent.md from the services' SETTINGS.
docs: install
	$(PY) scripts/gen-settings-docs.py

## Regenerate the Python stubs and the TypeScript client's code from protos/ (commit both).
protos: install
	bash scripts/gen-protos.sh
	bash scripts/gen-ts-client.sh

## Regenerate only the TypeScript client's code (clients/typescript/src/gen) from protos/.
ts-client: install
	bash scripts/gen-ts-client.sh

## Snapshot the protos as released (protos/released.binpb); `make lint` then refuses breaking changes.
release-protos: install
	bash scripts/release-protos.sh

# Only the workspace lifecycle figures (stock-image create, pause, snapshot, fork), against the SDK.
bench-workspaces: install
	$(PY) -m bench.workspaces $(BENCH_ARGS)

bench: install
	bash scripts/test-env.sh
	$(PY) -m bench.run $(BENCH_ARGS)

## Reliability: faults (kill -9, Docker engine stopped), runaway commands, load, containment probes.
## Long and disruptive (it stops and restarts dockerd at the end); about 4 minutes. See docs/reliability.md.
chaos: install
	bash scripts/test-env.sh
	$(VENV)/bin/pytest -q -rs -s tests/chaos $(PYTEST_ARGS)

## Deployment end to end: build the images locally (no registry; scripts/deploy-env.sh: the service,
## workspace and PostgreSQL images), then bring up compose.yaml (alone and with compose.postgres.yaml),
## a two-replica Swarm stack and a 3-agent + PostgreSQL stack, and drive them with grpcurl and the CLI.
e2e: install
	bash scripts/deploy-env.sh
	FIREBOX_E2E_PREPARED=1 $(VENV)/bin/pytest -q -rxs tests/e2e/deploy $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .firebox build *.egg-info
