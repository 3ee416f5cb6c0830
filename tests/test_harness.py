"""The suite's own set-up (tests/conftest.py), which `make test`'s time rests on."""
import os

import pytest
import torch


def test_a_pytest_xdist_worker_runs_torch_and_its_subprocesses_on_one_thread():
    """Two workers of two threads each on 2 cores spin against each other."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        pytest.skip('not under pytest-xdist (make test runs it there)')
    assert torch.get_num_threads() == 1
    assert os.environ['OMP_NUM_THREADS'] == '1'


def test_the_tests_of_the_trained_toy_detector_share_one_worker(request):
    """Each worker that asks for the trained toy detector trains its own."""
    users = [item for item in request.session.items
             if 'trained_toy' in getattr(item, 'fixturenames', ())]
    for item in users:
        groups = [mark.args for mark in item.iter_markers('xdist_group')]
        assert groups == [('trained_toy',)], item.nodeid
