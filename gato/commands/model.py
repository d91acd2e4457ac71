"""`gato presets` and `gato scaling`: the model presets and what they cost at the paper's scale."""

from __future__ import annotations

from gato.config import PRESETS, ModelConfig


def presets() -> dict[str, ModelConfig]:
    """List the model presets with their sizes."""
    import torch

    from gato.model import Gato

    print(f"{'preset':<12} {'layers':>6} {'width':>6} {'heads':>5} {'kv':>4} {'ff':>6} {'context':>7} {'params':>9}")
    for name, c in PRESETS.items():
        with torch.device("meta"):
            n = Gato(c).num_params()
        print(f"{name:<12} {c.num_layers:>6} {c.width:>6} {c.num_heads:>5} {c.head_dim:>4} {c.ff_size:>6} "
              f"{c.context:>7} {n / 1e6:>8.1f}M")
    return PRESETS
