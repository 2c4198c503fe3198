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

.PHONY: install quickstart experiment experiment-latent16 experiment-small experiment-flexible experiment-sweep test test-fast test-all-combinations deploy-test docs bench clean lock

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

# The articles' experiment: the protocol of "Representation learning with
# MMD-VAE" (latent 2, batch 100, Adam 1e-4, 50 epochs) for the VAE and the
# MMD-VAE on Fashion-MNIST (60,000 training images; apt-get install
# dataset-fashion-mnist), over SEEDS seeds with 95% intervals, side by side
# in $(RUNS)/fashion_mnist/report.html.  PARALLEL runs at once.
SEEDS ?= 3
PARALLEL ?= 1
experiment: install
	$(BIN)/python -m trainers.compare --dataset=fashion_mnist --latent_dim=2 \
	  --batch_size=100 --learning_rate=1e-4 --epochs=50 --plot_every=10 \
	  --seeds=$(SEEDS) --parallel=$(PARALLEL) --output_dir=$(RUNS)/fashion_mnist

# The same question at latent 16 with the package's default learning rate.
experiment-latent16: install
	$(BIN)/python -m trainers.compare --dataset=fashion_mnist --latent_dim=16 \
	  --batch_size=100 --epochs=50 --plot_every=10 --seeds=$(SEEDS) \
	  --parallel=$(PARALLEL) --output_dir=$(RUNS)/fashion_mnist_latent16

# The InfoVAE tutorial's small-data experiment: 500 training digits (50 per
# class of mnist_5k), 300 epochs, 5 seeds.
experiment-small: install
	$(BIN)/python -m trainers.compare --dataset=mnist_5k --train_examples=500 \
	  --epochs=300 --plot_every=100 --seeds=5 --parallel=$(PARALLEL) \
	  --output_dir=$(RUNS)/small_data

# A decoder flexible enough to model the images without the code (a
# conditional PixelCNN): does the ELBO's code collapse where the MMD
# objective's does not?  mnist_5k (4,000 training images), latent 16,
# 20 epochs, 3 seeds (docs/experiment.md).
experiment-flexible: install
	$(BIN)/python -m trainers.compare --dataset=mnist_5k --likelihood=pixel_cnn \
	  --latent_dim=16 --batch_size=100 --epochs=20 --plot_every=0 --seeds=3 \
	  --parallel=$(PARALLEL) --eval_iwae_samples=0 \
	  --models=vae,info_vae,info_vae:alpha=1,mmd_vae \
	  --output_dir=$(RUNS)/pixel_cnn_mnist

# The beta sweep of the VAE and the lambda sweep of the InfoVAE on the
# rate-distortion plane: mnist_5k, latent 16, 10 epochs, 3 seeds.
experiment-sweep: install
	$(BIN)/python -m trainers.compare --dataset=mnist_5k --latent_dim=16 \
	  --batch_size=100 --epochs=10 --plot_every=0 --seeds=3 \
	  --parallel=$(PARALLEL) --eval_iwae_samples=0 \
	  --models=vae:beta=0.25,vae,vae:beta=4,info_vae:lambda=100,info_vae,info_vae:alpha=1,mmd_vae \
	  --output_dir=$(RUNS)/sweep

# Two worker processes: most tests are single-threaded Python or wait on
# subprocesses, so two overlap on 2 cores (timings, with their machine and
# date: docs/performance.md, "The test suite").  Each run ends with its
# ten slowest tests (a fixture's build is the setup of its first user).
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=10

# The inner loop: the suite without the tests marked slow (end-to-end runs
# of real processes and data).
test-fast: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m 'not slow'

# The suite's family test on every allowed (model, prior, likelihood,
# architecture) combination, not only the pairs (docs/testing.md).
test-all-combinations: install
	TFP_VAE_ALL_COMBINATIONS=1 $(BIN)/python -m pytest -q -n 2 tests/family/test_components.py

# The deployment paths run for real on this machine (docs/kubeflow.md, "Run
# it here"): Docker and debootstrap from apt if missing, a daemon started
# (and stopped) if none runs, a Debian base image from the mirror apt uses
# (kept once made), the image from deploy/docker/Dockerfile, then the tests
# marked `deploy`: both pipelines through KFP's local Docker runner, the
# TFJob's and the TrainJob's pods as containers, the served model.
deploy-test: install
	PYTHON=$(BIN)/python deploy/local/deploy-test.sh

# Rewrites the generated docs (docs/flags.md, docs/architecture.md's module
# list) from what the code prints; tests/docs/test_docs.py checks they are
# current.
docs: install
	$(BIN)/python docs/generate.py

# What the per-machine-class decisions (tfp_vae/runtime/measurements.py) are measured
# with, the profile, serving, and the PyTorch peer when the peers extra is
# installed (docs/testing.md).
bench: install
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/replica_throughput.py
	$(BIN)/python bench/iwae_throughput.py
	$(BIN)/python bench/op_profile.py
	$(BIN)/python bench/serving_latency.py
	$(BIN)/python bench/serving_load.py
	$(BIN)/python bench/compare_parallel.py
	@if $(BIN)/python -c 'import torch' 2>/dev/null; then \
	  $(BIN)/python bench/torch_peer.py; \
	else \
	  echo "bench/torch_peer.py skipped: torch is not installed (pip install -c $(LOCK) '.[peers]')"; \
	fi

# Re-resolves setup.cfg's ranges in a scratch environment and rewrites the
# lock with what it got; run `make test` on the result before committing it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test,peers]'
	{ sed -n '/^#/p' requirements/lock.txt; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable \
	    | grep -v -e '^setuptools==' -e '^wheel==' -e '^tfp.vae'; \
	} > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt
	rm -rf .lock-venv
	@echo "requirements/lock.txt refreshed: run make test, then commit it"

clean:
	rm -rf $(VENV) $(RUNS) *.egg-info
