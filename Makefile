# The two commands a new user runs: `make run` and `make test`. Each builds its own
# virtual environment in .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= data
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	@# pyzbar's libzbar0 (benchmarks.frames) and wrk (benchmarks.api's single scans)
	@if [ "$$(id -u)" = 0 ] && { ! ldconfig -p | grep -q libzbar.so.0 || ! command -v wrk >/dev/null; }; then \
		apt-get update -qq && apt-get install -y -qq libzbar0 wrk >/dev/null; fi
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/qrtrace serve --data $(DATA) --demo --host $(HOST) --port $(PORT)

# The ingest tests need a real Kafka broker: scripts/kafka fetches its jars with Maven on
# first use, starts it on loopback, and it is stopped again whatever pytest's outcome.
test: $(VENV)/.installed
	@# the web page tests drive Debian's chromium; as root (CI) it is installed here
	@if [ "$$(id -u)" = 0 ] && [ ! -x /usr/bin/chromium ]; then \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; fi
	$(VENV)/bin/ruff check .
	@# numba compiles the kernels (a fresh clone: minutes of CPU) while the broker starts
	@$(PY) -m api.warmup & warming=$$!; \
	bootstrap=$$(scripts/kafka start) || exit 1; \
	trap 'scripts/kafka stop' EXIT; trap 'exit 130' INT TERM; \
	wait $$warming; \
	QRTRACE_KAFKA=$$bootstrap $(PY) -m pytest -q

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks.tokens
	$(PY) -m benchmarks.frames --plot out/bench/frames.svg
	$(PY) -m benchmarks.frames --generator camera --seed 13 --plot out/bench/frames-camera.svg
	$(PY) -m benchmarks.frames --generator kiosk --seed 5 --plot out/bench/frames-kiosk.svg
	$(PY) -m benchmarks.tracing --checkins 10000000 --plot out/bench/tracing-10M.svg
	$(PY) -m benchmarks.ingest --backend embedded --format packed
	$(PY) -m benchmarks.api
	@bootstrap=$$(scripts/kafka start) || exit 1; \
	trap 'scripts/kafka stop' EXIT; \
	$(PY) -m benchmarks.ingest --backend kafka --format packed --bootstrap $$bootstrap && \
	$(PY) -m benchmarks.ingest --backend kafka --format json --bootstrap $$bootstrap

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .benchmarks
