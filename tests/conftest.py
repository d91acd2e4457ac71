"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Test models are tiny: one thread is as fast, and on a busy 2-core machine several threads
    spin-wait on each other (the overfit test took 40 s instead of 6 s with 2 threads under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
