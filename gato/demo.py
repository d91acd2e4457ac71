"""`gato demo`: the smallest honest end-to-end run until the full demo lands.

Builds sequences from generated episodes, text and captioned images, shows one, trains
gato-tiny for about a minute and prints the loss going down.
"""

from __future__ import annotations

import time
from pathlib import Path


def demo(out: Path = Path("runs/demo"), minutes: float = 1.0, context: int = 256, batch_size: int = 8) -> dict:
    """Train gato-tiny on generated data for about a minute and print the loss going down.

    Args:
        out: parent folder of the run (a new timestamped run folder is made inside).
        minutes: training time.
        context: tokens per sequence (short, so a CPU makes many steps in a minute).
        batch_size: sequences per step.
    """
    from gato.inspection import inspect
    from gato.training.trainer import train

    print("== one training sequence, as the model sees it (first 24 positions) ==")
    inspect(source="toy/find-square", count=24, context=context)
    run = Path(out) / time.strftime("%Y%m%d-%H%M%S")
    print(f"\n== training gato-tiny for {minutes:g} minute(s) ==")
    result = train(out=run, recipe="tiny", steps=100_000, warmup=20, batch_size=batch_size, context=context,
                   max_minutes=minutes, log_every=5)
    hist = result["history"]
    for rec in hist:
        groups = "  ".join(f"{k[5:]} {v:.3f}" for k, v in rec.items() if k.startswith("loss_"))
        print(f"step {rec['step']:>5}  loss {rec['loss']:.3f}  ({groups})  {rec['tokens_per_s']:.0f} tokens/s")
    if len(hist) >= 2:
        print(f"\nloss fell from {hist[0]['loss']:.3f} to {hist[-1]['loss']:.3f} in {result['step']} steps; "
              f"checkpoint and TensorBoard logs in {run}")
    return result
