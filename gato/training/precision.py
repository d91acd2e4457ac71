"""Mixed precision: bfloat16 autocast where the device multiplies bf16 matrices natively.

On a CPU with AMX or AVX-512 BF16 (recent Xeons, AMD Zen 4 and later) oneDNN runs bf16 products
2-5x faster than float32 ones (docs/benchmarks.md); elsewhere autocast would emulate them and
be slower, so `auto` keeps float32 there. CUDA devices always train in bf16 autocast. Weights,
optimizer state and the loss stay float32 either way (autocast only lowers the products).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


@functools.cache
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once a process (every CPU query below parses it)."""
    try:
        return open("/proc/cpuinfo").read()
    except OSError:  # not Linux
        return ""


def cpu_model() -> str | None:
    """The CPU's model name as `lscpu` prints it (None where /proc/cpuinfo is missing)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def cpu_bf16_units() -> list[str]:
    """The CPU's bf16 matrix instruction sets among AMX and AVX-512 BF16 (/proc/cpuinfo flags)."""
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo().splitlines()
                  if line.startswith("flags")), [])
    return [f for f in ("amx_bf16", "avx512_bf16") if f in flags]


def cpu_has_bf16() -> bool:
    """Whether oneDNN on this CPU has native bf16 matrix instructions (AMX or AVX-512 BF16)."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    if not _cpuinfo():  # not Linux: trust oneDNN's answer
        return True
    return bool(cpu_bf16_units())


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
