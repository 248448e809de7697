# relaysim: every target sets up .venv itself, so a fresh clone needs only Python and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint figures bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,sweep]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) experiments/seed_story.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

figures: $(STAMP)
	$(PY) experiments/run_all.py
	$(PY) experiments/update_readme.py

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) experiments/benchmark.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
