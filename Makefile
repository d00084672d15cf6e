# The two README commands: `make run` starts Sluice, `make test` runs the test suite.
# Both install into a local virtualenv (.venv) first when requirements.txt changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system-deps run stop status test chromium

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

# promtool checks the Prometheus config and alert rules (tests/operations/
# test_monitoring_files.py): only the binary, taken from Debian's prometheus package
# (no service installed), once.
$(VENV)/bin/promtool: | $(VENV)/.installed
	@command -v apt-get >/dev/null || { echo "promtool: needs apt-get (Debian) to fetch the prometheus package"; exit 1; }
	cd "$$(mktemp -d)" && { apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }; } \
		&& dpkg-deb --fsys-tarfile prometheus_*.deb | tar -xO ./usr/bin/promtool > "$(CURDIR)/$@.tmp"
	chmod +x "$@.tmp" && mv "$@.tmp" "$@"

test: install chromium $(VENV)/bin/promtool
	$(PY) -m pytest
