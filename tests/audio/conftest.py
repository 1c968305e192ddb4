import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny audio models spend their time in thread hand-offs, not arithmetic: use one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
