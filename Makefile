# symfhir — `make demo` and `make test` work on a fresh clone; each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE := tests/data/sample
DEMO_OUT := out/demo

.PHONY: demo test lint unit bench bench-import bench-summary bench-hapi-ceiling bench-privacy bench-sharing browser sample clean

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
	@echo "Bundles (one per client, NDJSON): $(DEMO_OUT)/bundles.ndjson"
	@echo "Rejected rows with reasons:       $(DEMO_OUT)/rejects.csv and $(DEMO_OUT)/rejects-photos.csv"
	@scripts/demo

browser:
	@scripts/install-browser

test: $(STAMP) browser lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP)
	$(PY) -m pytest -q -m unit

# Byte-compiled first, as pip does when it installs a package: with PYTHONDONTWRITEBYTECODE
# set (as on this machine) an editable install would compile every module on every run.
bench: $(STAMP)
	$(PY) -m compileall -q symfhir smart_app
	$(PY) benchmarks/bench_map.py

bench-import: $(STAMP)
	$(PY) benchmarks/bench_import.py

bench-summary: $(STAMP)
	$(PY) benchmarks/bench_summary.py

bench-hapi-ceiling: $(STAMP)
	$(PY) benchmarks/bench_hapi_ceiling.py

# Privacy requests: the access package (2,000 resources, 200 MB of photos) against plain GETs;
# the deletion plan for a client with 2,000 resources (symfhir's own CPU time); the officer's
# dashboard with 10,000 open requests (app time).
bench-privacy: $(STAMP)
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_deletion.py
	$(PY) benchmarks/bench_privacy_dashboard.py

# Physician sharing: the SMART Health Link manifest endpoint at 50 concurrent requests (app
# time, with and without a passcode), encrypting a 100 MB package against raw AES-256-GCM, and
# the FHIR requests of the patient summary for a client with 2,000 resources.
bench-sharing: $(STAMP)
	$(PY) benchmarks/bench_sharing_links.py
	$(PY) benchmarks/bench_summary_document.py

sample: $(STAMP)
	$(PY) scripts/make_sample_clients.py
	$(PY) scripts/make_sample_photos.py

clean:
	rm -rf out .pytest_cache
