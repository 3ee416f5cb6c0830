# The project's commands (see README). PYTHON: the venv tools/install.sh makes, or
# the active python where there is none (an install with EVD_VENV=none)
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python)

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
