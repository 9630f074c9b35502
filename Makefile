# The two Quickstart commands are `make run` and `make test`; see README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock | cut -c1-12)
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# llama.cpp (the bundled local model) is built from source; a build tuned to the build machine's CPU
# crashed here (AVX-512), so it is built for a portable x86-64/AVX2 baseline. About 6 minutes, once.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: run test fuzz lint format lock install clean

$(STAMP): requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	@$(VENV)/bin/uv pip sync -q --python $(PY) requirements.lock
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Run the platform on embedded defaults (or on what the environment configures).
run: $(STAMP)
	$(PY) manage.py serve

## Run every test: Postgres+pgvector (embedded unless DATABASE_URL is set), Redis, a Celery worker, Chromium.
test: $(STAMP)
	@scripts/ensure-test-services
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} $(PY) -m pytest $(PYTEST_ARGS)

## Fuzz every API operation longer than `make test` does (schemathesis, FUZZ_EXAMPLES per operation).
fuzz: $(STAMP)
	@scripts/ensure-test-services
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} $(PY) -m pytest tests/test_api_fuzz.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Re-pin dependencies after editing pyproject.toml.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
