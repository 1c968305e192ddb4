import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These models are small: one intra-op thread is as fast and far steadier on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
