"""Mixed precision: bfloat16 autocast where the device multiplies bf16 matrices natively.

On a CPU with AMX or AVX-512 BF16 (recent Xeons, AMD Zen 4 and later) oneDNN runs bf16 products
2-5x faster than float32 ones (docs/benchmarks.md); elsewhere autocast would emulate them and
be slower, so `auto` keeps float32 there. CUDA devices always train in bf16 autocast. Weights,
optimizer state and the loss stay float32 either way (autocast only lowers the products).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


def cpu_has_bf16() -> bool:
    """Whether oneDNN on this CPU has native bf16 matrix instructions (AMX or AVX-512 BF16)."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:  # not Linux: trust oneDNN's answer
        return True
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve(precision: str, device: torch.device | str) -> str:
    """`auto` -> bf16 on CUDA and on CPUs with native bf16 products, else fp32."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    return "bf16" if kind == "cuda" or (kind == "cpu" and cpu_has_bf16()) else "fp32"


def autocast(precision: str, device: torch.device | str):
    """The forward's context: bf16 autocast on the device's type, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
