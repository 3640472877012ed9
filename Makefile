# Two commands: `make run` serves the app, `make test` runs the whole suite.
# Both create .venv when missing and install the pinned requirements (torch first, CPU build).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 7860
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run serve test test-fast lint install clean bench-speed bench-ann bench-pipeline bench-quality bench-serve

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	@bash scripts/run.sh $(PY) $(PORT)

# The embeddings service alone (Ollama- and OpenAI-shaped routes): MODEL=folder-or-id (default: every
# finished model); HOST and PORT as for `python -m serve` (default 127.0.0.1:8000; HOST=:: for IPv6).
serve: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m serve $(if $(MODEL),--model $(MODEL),)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

# ruff and mypy with the settings in pyproject.toml (CI runs this before `make test`).
lint: $(STAMP)
	$(VENV)/bin/ruff check core jobs ui bench tests app.py serve
	$(VENV)/bin/mypy

# The inner loop: everything but the tests marked slow (workers, servers, browsers, distillations).
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow" tests

# Benchmarks (docs/benchmarks.md): one command each, from a fresh clone. They print tables and write
# bench/results/<name>.json. STUDENT=folder picks the student for speed and ann (default: one is built).
bench-speed: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/speed.py $(STUDENT)
	$(PY) bench/speed_chart.py

# usearch and hnswlib are candidates of the ANN bench only (hnswlib builds from source: needs g++).
bench-ann: $(STAMP)
	$(PY) -m pip install --quiet --no-deps usearch==2.26.6 numkong==7.8.6 hnswlib==0.8.0
	HF_HUB_OFFLINE=1 $(PY) bench/ann.py $(STUDENT)

bench-pipeline: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/pipeline.py

# The service under load over loopback (student, teacher, a fixed-vector floor; 1, 8, 32 clients);
# STUDENT=folder picks the student (default: bench/speed.py's, built once). A few minutes on 2 cores.
bench-serve: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/serve.py $(STUDENT)

# tokenlearn is the quality bench's baseline only, not a dependency of the app (--no-deps keeps torch).
bench-quality: $(STAMP)
	$(PY) -m pip install --quiet --no-deps tokenlearn==0.2.1 more-itertools==10.8.0
	HF_HUB_OFFLINE=1 $(PY) bench/quality.py

clean:
	rm -rf var/
