# The project's commands (see README). PYTHON is the venv tools/install.sh makes.
PYTHON ?= .venv/bin/python

.PHONY: install test test-quick demo
install:
	bash tools/install.sh

# the whole suite (what CI runs)
test:
	$(PYTHON) -m pytest -q

# while working: everything but the tests marked slow
test-quick:
	$(PYTHON) -m pytest -q -m "not slow"

demo:
	$(PYTHON) tools/demo.py
