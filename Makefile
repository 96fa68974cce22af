# Kiln's entry points. `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
INSTALLED := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup run test test-database lint status ctl stop bench clean

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

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

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

bench: setup
	$(PY) bench/isolation.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
