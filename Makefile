# The two commands of the README: `make run` (a running local service) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test install lint format migrate clean

run: install migrate  ## web (daphne :$WEB_PORT, 8000) + worker (qcluster) + YooKassa sandbox (:$YOOKASSA_SANDBOX_PORT, 8001)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.local start

test: install  ## the whole suite; DATABASE_URL=postgres://... runs it on PostgreSQL
	$(BIN)/pytest

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

migrate: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo_catalog
	$(BIN)/python manage.py setup_schedules

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
