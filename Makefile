# The project's commands (see README). PYTHON is the venv tools/install.sh makes.
PYTHON ?= .venv/bin/python

.PHONY: install test demo
install:
	bash tools/install.sh

test:
	$(PYTHON) -m pytest tests -q

demo:
	$(PYTHON) tools/demo.py
