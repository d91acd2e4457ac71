"""`gato merge`: a checkpoint on the line between two checkpoints of one model (gato/training/merging.py)."""

from __future__ import annotations

from pathlib import Path

from tyro.conf import Positional

from gato.training.loading import check_output_folder
from gato.training.merging import merge_checkpoints


def merge(first: Positional[Path], second: Positional[Path], out: Path, weight: float = 0.5,
          force: bool = False) -> Path:
    """Write (1 - WEIGHT) * FIRST + WEIGHT * SECOND as a new checkpoint, with SECOND's config
    (usually the fine-tuned one: its training run, data and tasks) and a record of both parents.
    The result acts, evaluates and exports like any checkpoint; it has no optimizer state to resume.

    Args:
        first: checkpoint (or run folder: its newest checkpoint), usually the one fine-tuning started from.
        second: checkpoint (or run folder) of the same model, usually the fine-tuned one.
        out: the folder to write (a new one, or an earlier checkpoint with --force).
        weight: SECOND's share, in [0, 1]: 0 is FIRST, 1 is SECOND.
        force: replace OUT when it holds a checkpoint (anything else there is never replaced).
    """
    out = Path(out)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"--weight {weight} is outside [0, 1]")
    check_output_folder(out, [first, second], force, "merged")
    path = merge_checkpoints(first, second, out, weight)
    print(f"merged {first} and {second} (weight {weight} on the second) -> {path}")
    return path
