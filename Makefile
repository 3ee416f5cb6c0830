# The project's commands (see README). PYTHON: the venv tools/install.sh makes, or
# the active python where there is none (an install with EVD_VENV=none)
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python)

.PHONY: install test test-quick demo
install:
	bash tools/install.sh

# Tests run on TEST_WORKERS pytest-xdist workers, one torch thread each
# (tests/conftest.py); the tests of the one trained toy detector share a worker.
# TEST_WORKERS=0: all in this process (pdb, -s).
TEST_WORKERS ?= 2
PYTEST = $(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# the whole suite (what CI runs)
test:
	$(PYTEST)

# while working: everything but the tests marked slow
test-quick:
	$(PYTEST) -m "not slow"

demo:
	$(PYTHON) tools/demo.py
