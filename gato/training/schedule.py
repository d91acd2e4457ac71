"""Learning-rate schedule: linear warm-up from ~0 to the peak, then cosine decay to 10% of it."""

from __future__ import annotations

import math


def lr_at(step: int, *, peak: float, warmup: int, total: int, final_ratio: float = 0.1,
          start: float = 1e-7) -> float:
    if step < warmup:
        return start + (peak - start) * step / max(1, warmup)
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    lo = peak * final_ratio
    return lo + 0.5 * (peak - lo) * (1 + math.cos(math.pi * t))
