"""`gato presets` and `gato scaling`: the model presets and what they cost at the paper's scale."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path

from gato.config import PRESETS, ModelConfig


def presets() -> dict[str, ModelConfig]:
    """List the model presets with their sizes."""
    import torch

    from gato.model import Gato

    print(f"{'preset':<14} {'layers':>6} {'width':>6} {'heads':>5} {'kv':>4} {'ff':>6} {'context':>7} {'params':>9}")
    for name, c in PRESETS.items():
        with torch.device("meta"):
            n = Gato(c).num_params()
        print(f"{name:<14} {c.num_layers:>6} {c.width:>6} {c.num_heads:>5} {c.head_dim:>4} {c.ff_size:>6} "
              f"{c.context:>7} {n / 1e6:>8.1f}M")
    return PRESETS


def scaling(gpu: str = "H100", mfu: float = 0.4, bench: Path | None = None, gpus: tuple[int, ...] = (8, 64, 256),
            memory_gb: float = 80.0, target_share: float = 0.5, json: bool = False) -> list[dict]:
    """Tokens, memory per GPU and hours for each preset at the paper's batch and steps.

    Args:
        gpu: GPU model (its bf16 peak: H100, H100 PCIe, H200, A100).
        mfu: assumed model FLOPs utilisation (ignored with --bench).
        bench: a `gato bench train --json` result measured on a GPU: its MFU and GPU are used.
        gpus: GPU counts to plan for.
        memory_gb: memory per GPU.
        target_share: share of positions that are targets (the output head's FLOPs and memory).
        json: print the rows as JSON instead of a Markdown table.
    """
    from gato.scaling import markdown, plan

    source = "assumed, not measured"
    if bench is not None:
        measured = jsonlib.loads(Path(bench).read_text())
        if measured.get("mfu") is None or "gpu" not in measured.get("machine", {}):
            raise ValueError(f"{bench}: not a `gato bench train --json` result measured on a GPU "
                             f"(it needs 'mfu' and machine.gpu)")
        gpu, mfu = measured["machine"]["gpu"], measured["mfu"]
        source = f"measured: {measured['preset']} on {gpu}, {measured.get('date', '')}"
    rows = plan(gpu, mfu, gpus, memory_gb, target_share)
    print(jsonlib.dumps(rows) if json else markdown(rows, gpu, mfu, source))
    return rows
