# The two README commands: `make run` starts Sluice, `make test` runs the test suite.
# Both install into a local virtualenv (.venv) first when requirements.txt changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run stop status test chromium

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# `make run REPLICAS=2` starts two streaming read replicas (default: SLUICE_PG_REPLICAS, 1).
run: install
	$(PY) manage.py stack up $(if $(REPLICAS),--replicas $(REPLICAS))

stop:
	$(PY) manage.py stack down

status:
	$(PY) manage.py stack status

# The browser test drives Debian's Chromium through Playwright (never a downloaded
# browser); installed once, skipped when already there.
chromium:
	@test -x /usr/bin/chromium || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; }

test: install chromium
	$(PY) -m pytest
