# Two entry points: `make demo` (train the embedded model) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rlkit-installed

.PHONY: install demo test test-fast clean

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/rlkit train examples/arithmetic_grpo.yaml

test: install
	$(PY) -m pytest tests

test-fast: install
	$(PY) -m pytest tests -m "not slow"

clean:
	rm -rf runs .pytest_cache
