# Quick start: `make demo` and `make test`. Needs python3 (>= 3.10) and make; nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test bench package clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) >&2 || { echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	@$(PIP) install -e '.[test]' >&2
	@touch $@

demo: $(VENV)/.installed
	@env -u PYTHONUNBUFFERED $(VENV)/bin/anthropic-compliance-input demo

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/bench.py

package: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" packaging/build.sh

clean:
	rm -rf $(VENV) build dist
