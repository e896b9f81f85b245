"""The equivariant tests run on tiny tensors: one intra-op thread (restored afterwards) avoids
the synchronisation cost of torch's thread pool, which on a busy machine stalls every small op."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
