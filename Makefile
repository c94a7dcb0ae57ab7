# Quick start: `make demo` (bootstrap tier, no services) and `make test` (everything, real services).
VENV := .venv
BACKBONE := $(VENV)/bin/backbone
PYTEST := $(VENV)/bin/pytest

.PHONY: setup setup-python setup-dev demo test test-unit test-infra test-deploy test-integration local-up local-down bench clean

setup:            ## install services (apt), build TimescaleDB, Kafka jars (Maven), the deploy tools (Go) and the virtualenv
	bash scripts/setup.sh all

setup-python:     ## only the virtualenv with what running backbone needs: enough for the bootstrap tier
	bash scripts/setup.sh python

setup-dev:        ## the virtualenv with the dev extras (Pulumi, kubernetes, pytest...), no services
	bash scripts/setup.sh dev

demo: setup-python ## the embedded bootstrap tier's full cycle: ingest, read through the cache, events to the bridge, serve, validate
	$(BACKBONE) migrate apply
	$(BACKBONE) ingest --dimension bars --generate 10400 --symbols 20      # 20 symbols x 2 years of daily bars
	$(BACKBONE) ingest --dimension trades --generate 93600 --symbols 20    # a day of trades
	$(BACKBONE) query latest --symbols SYM000,SYM001,SYM002 --repeat 2     # a cache miss, then a hit
	$(BACKBONE) query candles --symbols SYM000 --start 2024-01-02T14:30Z --end 2024-01-02T14:35Z
	$(BACKBONE) events tail --group demo-tail --from-beginning --max 5     # what the ingests announced (the event log)
	$(BACKBONE) serve --schedule examples/demo/schedule.toml --run-for 8 --snapshot .backbone/demo/supervision.json  # scheduled ingest + the bridge, then a clean stop: 0 tasks left
	$(BACKBONE) validate

test: setup       ## every test: unit, Pulumi mocks, the real engine on a real API server, and integration on real services
	$(PYTEST) -q

test-unit: setup-dev
	$(PYTEST) -q tests/unit

test-infra: setup-dev
	$(PYTEST) -q tests/infra

test-deploy: setup ## the staging stack deployed by the real Pulumi engine to a local kube-apiserver (docs/stacks.md)
	$(PYTEST) -q tests/deploy

test-integration: setup
	$(PYTEST) -q tests/integration

local-up: setup   ## PostgreSQL, Redis and Kafka on 127.0.0.1, outputs in .backbone/local/outputs.json
	$(BACKBONE) local up

local-down:
	$(BACKBONE) local down

clean:
	-$(BACKBONE) local down
	rm -rf .backbone .pytest_cache
