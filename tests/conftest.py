"""Shared test settings, and the small model that the model, acting, generation, training and
evaluation tests build (a test that needs another size derives it from SMALL, the difference
written where it is used)."""

import dataclasses

import pytest
import torch

from gato.config import ModelConfig, get_preset
from gato.model import Gato

# gato-tiny's vocabulary and token layout at 2 layers of width 64; no dropout, so outputs are exact.
SMALL = dataclasses.replace(get_preset("gato-tiny"), name="test-small", num_layers=2, width=64, num_heads=2,
                            head_dim=32, mlp_hidden=128, context=64, dropout=0.0)


def small_model(cfg: ModelConfig = SMALL, seed: int = 0) -> Gato:
    """A fresh model of `cfg` in eval mode, its weights drawn after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return Gato(cfg).eval()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Test models are tiny: one thread is as fast, and on a busy 2-core machine several threads
    spin-wait on each other (the overfit test took 40 s instead of 6 s with 2 threads under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
