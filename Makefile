# The two README commands: `make run` starts Sluice, `make test` runs the test suite.
# Both install into a local virtualenv (.venv) first when requirements.txt changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system-deps run stop status test

install: system-deps $(VENV)/.installed

# iproute2 (`ip netns`): tests/operations/test_multihost.py runs a worker on its own
# network "host". A Debian package; installed only when missing.
system-deps:
	@command -v ip >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2; }

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

run: install
	$(PY) manage.py stack up

stop:
	$(PY) manage.py stack down

status:
	$(PY) manage.py stack status

test: install
	$(PY) -m pytest
