import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS)


@pytest.fixture(scope='session')
def reference_dir():
    """Key layouts of the public checkpoints (name<TAB>shape per tensor)."""
    return os.path.join(TESTS, 'reference_keys')
