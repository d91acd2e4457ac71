"""`gato inspect`: a training sequence as a table, so anyone can see what the model sees
(gato/inspection.py decodes and formats the positions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gato.inspection import format_sequence
from gato.tokenization.vocab import Kind


def inspect(source: str = "toy/find-square", start: int = 0, count: int = 64, seed: int = 0,
            context: int = 1024, preset: str = "gato-tiny", data: Path | None = None) -> str:
    """Print a training sequence as a table: position, kind, id, decoded value, local position, loss mask.

    Args:
        source: which data source to sample from: a generated toy source, or with --data a task
            collected there, e.g. control/cartpole (see the list printed for an unknown name).
        start: first position to print.
        count: number of positions to print.
        seed: sampling seed.
        context: sequence length to sample.
        preset: model preset whose token map is used.
        data: a dataset root from `gato collect`: its tasks are sources too, sampled as training
            samples them (the return filter, windows, prompts).
    """
    from gato.config import get_preset
    from gato.data import synthetic
    from gato.tokenization.text import TextTokenizer

    if start < 0 or count < 1:
        raise ValueError(f"start must be >= 0 and count >= 1, got {start} and {count}")
    model_cfg = get_preset(preset)
    if not 1 <= context <= model_cfg.context:
        raise ValueError(f"context must be in [1, {model_cfg.context}] (the {preset} model's context), got {context}")
    tm, text = model_cfg.token_map, TextTokenizer.default()
    srcs = {s.name: s for s in synthetic.sources(tm, text, seed=seed)}
    tasks = []
    if data is not None:
        from gato.data.datasets import control_sources, find_tasks

        tasks = find_tasks(Path(data))
        if source in tasks:  # only the task asked for is read
            (srcs[source],) = control_sources(Path(data), tm, text, tasks=(source,), verbose=False)
    if source not in srcs:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join([*srcs, *tasks])}")
    seq = srcs[source].sample(np.random.default_rng(seed), context)
    table = format_sequence(seq, tm, text, start, count)
    n_img = int((seq.kinds == Kind.IMAGE).sum())
    print(f"{source}: {len(seq)} positions ({n_img} image patches, {int(seq.loss_mask.sum())} targets)\n{table}")
    return table
