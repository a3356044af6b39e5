# Jingzhun: `make demo` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_TENANT ?= demo
DEMO_USER ?= demo
DEMO_PASSWORD ?= jingzhun-demo
PORT ?= 8000

.PHONY: venv demo test lint run worker beat migrate messages bench clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

migrate: venv
	$(PY) manage.py migrate --noinput

demo: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup $(DEMO_TENANT) --username $(DEMO_USER) --password $(DEMO_PASSWORD)
	@echo ""
	@echo "  Console:  http://127.0.0.1:$(PORT)/console/"
	@echo "  Login:    $(DEMO_USER) / $(DEMO_PASSWORD)"
	@echo ""
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# The whole suite. With DATABASE_URL (and MIGRATION_DATABASE_URL) and REDIS_URL set it runs on
# PostgreSQL with RLS and on Redis; otherwise on SQLite, skipping what needs PostgreSQL.
test: venv
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .

run: venv
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

worker: venv
	$(VENV)/bin/celery -A config worker -l info --concurrency 2 -Q jingzhun

beat: venv
	$(VENV)/bin/celery -A config beat -l info

messages: venv
	$(PY) manage.py makemessages -l en -l zh_Hans --ignore .venv --ignore bench
	$(PY) manage.py compilemessages --ignore .venv

clean-demo:
	rm -f db.sqlite3
