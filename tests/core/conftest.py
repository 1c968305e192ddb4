"""Fixtures shared by the core's tests."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Small ops on a shared 2-core machine run far faster on one thread (whatever OSTINATO_TEST_THREADS says)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
