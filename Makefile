# bonding: top-level targets.  `make demo` runs the lab (root), `make test` the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
# The OpenWrt userland (ubusd, libubus, uci, pyuci) built outside this repo for tests/owrt and the
# lab's ubusd: taken from /opt/owrt when it is there; otherwise those tests skip and say why.
OWRT_PREFIX ?= $(wildcard /opt/owrt)
export OWRT_PREFIX

.PHONY: all deps demo test lint unit lab bench clean

all: test

deps:
	VENV=$(VENV) sh tools/install-deps.sh

demo: deps
	$(VENV)/bin/bonding-lab demo $(if $(LINKS),--links $(LINKS))

lint: deps
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/mypy
	shellcheck -s sh tools/*.sh
	$(PY) tools/luci-pot.py --check

unit: deps
	$(VENV)/bin/pytest -q tests/unit

test: lint
	$(VENV)/bin/pytest -q -rs tests

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
