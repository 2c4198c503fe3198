# Everything runs from a virtual environment in .venv that the first target
# creates; later targets reuse it until setup.cfg or pyproject.toml change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNS ?= runs
EPOCHS ?= 30
# The exact versions CI tested (pip constraints).  LOCK= installs setup.cfg's
# ranges as resolved today instead.
LOCK ?= requirements/lock.txt
CONSTRAINTS = $(if $(LOCK),-c $(LOCK))

.PHONY: install quickstart test bench clean lock

$(BIN)/.installed: setup.cfg pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed, got " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade $(CONSTRAINTS) pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[test]'
	touch $@

install: $(BIN)/.installed

# The main job, offline: both models on the embedded mnist_5k digits, with
# plots, metrics.json and a SavedModel each.
quickstart: install
	$(BIN)/python -m trainers.train --model=vae --epochs=$(EPOCHS) \
	  --model_dir=$(RUNS)/vae --export_dir=$(RUNS)/export/vae
	$(BIN)/python -m trainers.train --model=mmd_vae --epochs=$(EPOCHS) \
	  --model_dir=$(RUNS)/mmd_vae --export_dir=$(RUNS)/export/mmd_vae
	@echo "Done: see $(RUNS)/vae and $(RUNS)/mmd_vae (metrics.json, plots/)"

# Two worker processes: most tests are single-threaded Python or wait on
# subprocesses (measured 7 min against 11.5 min in one process, 2 cores).
test: install
	$(BIN)/python -m pytest -q -n 2

bench: install
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/iwae_throughput.py
	$(BIN)/python bench/serving_latency.py

# Re-resolves setup.cfg's ranges in a scratch environment and rewrites the
# lock with what it got; run `make test` on the result before committing it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '/^#/p' requirements/lock.txt; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable \
	    | grep -v -e '^setuptools==' -e '^wheel==' -e '^tfp.vae'; \
	} > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt
	rm -rf .lock-venv
	@echo "requirements/lock.txt refreshed: run make test, then commit it"

clean:
	rm -rf $(VENV) $(RUNS) *.egg-info
