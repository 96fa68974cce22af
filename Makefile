# Kiln's entry points. `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
INSTALLED := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Processes the suite is spread over (pytest-xdist): most tests wait on real workers, Redis or a browser, so
# three keep a 2-core machine busy. A file stays whole in one process (--dist loadfile): its tests run in
# their order and a module's stack starts once.
TEST_PROCESSES ?= 3
# Settings keep DEBUG off unless it is set (a forgotten variable must not start a debug server); on a laptop
# every target here runs with it on. `DEBUG=false make run` tries the production settings.
export DEBUG ?= true

.PHONY: setup run test test-database lint chromium nginx promtool status ctl stop bench clean

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Kiln needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Virtualenv with the pinned requirements, migrated database, admin user.
setup: $(INSTALLED)
	$(MANAGE) kiln setup

# The whole stack under supervisord in the foreground; Ctrl-C stops it.
run: setup
	$(MANAGE) kiln run

test: setup lint chromium nginx promtool
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

# The report-page test drives Debian's chromium through chromedriver. As root (CI, a fresh server) it is
# installed here; otherwise this says what to install.
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else \
			echo "make test needs Chromium for the browser test: sudo apt-get install chromium chromium-driver"; \
			exit 1; \
		fi; \
	fi

# The tests of deploy/nginx/kiln.conf run nginx -t and their own nginx on free loopback ports. As root
# it is installed here. Debian's package would start the system nginx on port 80 at install: a
# policy-rc.d that refuses service starts (invoke-rc.d and deb-systemd-invoke honour it) prevents that
# for the length of the install, unless the machine already has a policy of its own.
nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			policy=/usr/sbin/policy-rc.d; made=; \
			if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy && made=1; fi; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; status=$$?; \
			if [ -n "$$made" ]; then rm -f $$policy; fi; \
			exit $$status; \
		else \
			echo "make test needs nginx for the deploy tests: sudo apt-get install nginx"; \
			exit 1; \
		fi; \
	fi

# The Prometheus tests run promtool on deploy/prometheus/kiln-alerts.yml and on a /metrics scrape. As root
# it is installed here, from Debian's prometheus package (only its promtool is used; without the node
# exporter it recommends). Like nginx, the package would start a Prometheus server on port 9090 at install:
# the same policy-rc.d prevents that.
promtool:
	@if ! command -v promtool >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			policy=/usr/sbin/policy-rc.d; made=; \
			if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy && made=1; fi; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; status=$$?; \
			if [ -n "$$made" ]; then rm -f $$policy; fi; \
			exit $$status; \
		else \
			echo "make test needs promtool for the Prometheus tests: sudo apt-get install --no-install-recommends prometheus"; \
			exit 1; \
		fi; \
	fi

# The database-heavy tests alone: .ci/run repeats them with DATABASE_URL pointing at PostgreSQL.
test-database: $(INSTALLED)
	$(PY) -m pytest -m database $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

status: $(INSTALLED)
	@$(MANAGE) kiln ctl status

# make ctl CMD="restart kiln:worker-high"
ctl: $(INSTALLED)
	@$(MANAGE) kiln ctl $(CMD)

stop: $(INSTALLED)
	@$(MANAGE) kiln ctl shutdown

# Each benchmark prints its figures side by side and exits 1 when a target is missed; run them all.
bench: setup
	@status=0; \
	for script in bench/isolation.py bench/thumbnails.py bench/purge.py bench/overhead.py bench/rollups.py bench/issues.py bench/search.py bench/scale.py bench/fetch.py bench/load.py bench/flood.py bench/web_server.py bench/responsive.py; do \
		echo "== $$script"; $(PY) $$script || status=1; echo; \
	done; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
