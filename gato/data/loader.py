"""Batches for training steps, built ahead of time in worker processes.

A step's rows depend only on (seed, step, row) (gato/data/sampling.py), so the loader is a
map-style dataset over step numbers: worker k builds the batches of steps k, k+W, ... while the
accelerator works on the current one, and the order never depends on the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from gato.data.sampling import Batch, Mixture


class StepBatches(Dataset):
    """Index: a step; item: this rank's micro-batches of that step, one per range of rows."""

    def __init__(self, mixture: Mixture, rows: list[range], length: int):
        self.mixture, self.rows, self.length = mixture, rows, length

    def __getitem__(self, step: int) -> list[Batch]:
        return [self.mixture.batch(step, r, self.length) for r in self.rows]


def step_batches(mixture: Mixture, rows: list[range], length: int, start: int, stop: int,
                 workers: int = 0, pin_memory: bool = False) -> Iterator[list[Batch]]:
    """The micro-batches of steps [start, stop), built in `workers` processes (0: in this one)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    data = StepBatches(mixture, rows, length)
    if workers == 0:
        return (data[s] for s in range(start, stop))
    loader = DataLoader(data, batch_size=None, sampler=range(start, stop), num_workers=workers,
                        prefetch_factor=4, pin_memory=pin_memory and torch.cuda.is_available())
    return iter(loader)
