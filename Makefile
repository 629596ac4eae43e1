# symfhir — `make demo` and `make test` work on a fresh clone; each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE := tests/data/sample
DEMO_OUT := out/demo
# FHIR_BASE_URL points the demo at another server; the local HAPI is then not started.
FHIR_BASE := $(or $(FHIR_BASE_URL),http://localhost:$${FHIR_PORT:-8080}/fhir)

.PHONY: demo test lint unit bench bench-import sample clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	@echo "== symfhir map: the synthetic sample → FHIR R4 transaction Bundles (offline)"
	@$(VENV)/bin/symfhir map $(SAMPLE)/clients.csv --photos $(SAMPLE)/photos.csv \
		-o $(DEMO_OUT)/bundles.ndjson --rejects $(DEMO_OUT)/rejects.csv \
		--as-of "$$(date -Iseconds)"; rc=$$?; test $$rc -le 1
	@echo "== symfhir validate: every produced resource checked again"
	@$(VENV)/bin/symfhir validate $(DEMO_OUT)/bundles.ndjson
	@if [ -z "$(FHIR_BASE_URL)" ]; then \
		echo "== the local HAPI FHIR server (scripts/fhir-server; the first start builds it)"; \
		scripts/fhir-server start; fi
	@echo "== symfhir import: the same sample into $(FHIR_BASE)"
	@$(VENV)/bin/symfhir import $(SAMPLE)/clients.csv --photos $(SAMPLE)/photos.csv \
		--server $(FHIR_BASE) --rejects $(DEMO_OUT)/import-rejects.csv \
		--checkpoint $(DEMO_OUT)/import.checkpoint.json; rc=$$?; test $$rc -le 1
	@echo
	@echo "Bundles (one per client, NDJSON): $(DEMO_OUT)/bundles.ndjson"
	@echo "Rejected rows with reasons:       $(DEMO_OUT)/rejects.csv and $(DEMO_OUT)/rejects-photos.csv"
	@echo "FHIR server with the sample:      $(FHIR_BASE)/Patient  (scripts/fhir-server stop to stop it)"

test: $(STAMP) lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP)
	$(PY) -m pytest -q -m unit

bench: $(STAMP)
	$(PY) benchmarks/bench_map.py

bench-import: $(STAMP)
	$(PY) benchmarks/bench_import.py

sample: $(STAMP)
	$(PY) scripts/make_sample_clients.py
	$(PY) scripts/make_sample_photos.py

clean:
	rm -rf out .pytest_cache
