# Quick start: `make demo` and `make test`. Needs python3 (>= 3.10) and make; nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test bench bench-tenants package image clean

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

bench-tenants: $(VENV)/.installed
	$(PY) bench/tenants.py

# The container image (packaging/container/Containerfile). BASE= another Debian 12 image (e.g. one
# imported from `mmdebstrap --include=python3,python3-venv bookworm base.tar`) where no registry is
# at hand; IMAGE_TOOL= podman, buildah or docker; IMAGE_FLAGS= extra build flags.
IMAGE_TOOL ?= $(shell command -v podman || command -v buildah || command -v docker)
image: $(VENV)/.installed
	rm -rf build/image-wheels
	$(PIP) wheel -w build/image-wheels .
	$(IMAGE_TOOL) build $(IMAGE_FLAGS) -f packaging/container/Containerfile $(if $(BASE),--build-arg BASE=$(BASE)) \
	    -t anthropic-compliance-input:$$($(PY) -c 'import anthropic_compliance_input as m; print(m.__version__)') .

package: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" packaging/build.sh

clean:
	rm -rf $(VENV) build dist
