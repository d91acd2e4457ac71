"""How much a dataset can teach, before anyone trains on it.

A behaviour-cloned policy learns what the demonstrations vary. An expert that holds its system
so still that its actions use a handful of the 1024 bins (MuJoCo InvertedPendulum: 10 ids,
0.71 nats) shows nothing about what to do away from its own states, and a model trained on it
outputs a constant (docs/quality.md). Per action dimension: the distinct token ids used and the
entropy of their distribution (nats; log 1024 = 6.93 is the most a continuous dimension can
have, log n for n discrete actions); per observation: the mean standard deviation of its
continuous values. `gato collect` writes these into each task's card; `gato data-report` prints them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gato.data.episode import Episode, TaskSpec
from gato.tokenization import spaces
from gato.tokenization.batched import encode_batch
from gato.tokenization.vocab import TokenMap


def action_stats(spec: TaskSpec, episodes: list[Episode], tm: TokenMap, text=None) -> dict:
    """Distinct ids and entropy (nats) per action token position, over every step."""
    actions = [a for e in episodes for a in e.actions]
    batch = encode_batch(spec.action_space, actions, tm, role=spaces.ACTION)  # one call, not one per step
    if batch is not None:
        cols = batch.ids  # (steps, action tokens)
    else:  # text actions: their first tokens
        ids = [spaces.encode(spec.action_space, a, tm, role=spaces.ACTION, text=text).ids for a in actions]
        width = min(len(i) for i in ids)
        cols = np.array([i[:width] for i in ids])
    distinct, entropy = [], []
    for c in cols.T:
        _, counts = np.unique(c, return_counts=True)
        p = counts / counts.sum()
        distinct.append(int(len(counts)))
        entropy.append(round(abs(float(-(p * np.log(p)).sum())), 3))
    return {"action_ids_distinct": distinct, "action_entropy_nats": entropy, "steps": int(len(cols))}


def observation_spread(episodes: list[Episode]) -> float | None:
    """Mean standard deviation of the continuous (float) observation values over all steps."""
    def floats(o):
        if isinstance(o, dict):
            return np.concatenate([floats(v) for v in o.values()] or [np.zeros(0)])
        a = np.asarray(o)
        return a.ravel().astype(np.float64) if a.dtype.kind == "f" else np.zeros(0)
    def steps(e):  # (T, values): one array per episode where observations are plain arrays
        if e.observations and not isinstance(e.observations[0], dict):
            a = np.asarray(e.observations)
            if a.dtype.kind != "O":
                return a.reshape(len(a), -1).astype(np.float64) if a.dtype.kind == "f" else np.zeros((len(a), 0))
        return np.stack([floats(o) for o in e.observations])
    rows = np.concatenate([steps(e) for e in episodes]) if episodes else np.zeros((0, 0))
    if not rows.size:
        return None
    return round(float(rows.std(axis=0).mean()), 5)


def dataset_stats(root: Path, task_name: str, tm: TokenMap, text=None, split: str = "train",
                  limit: int | None = 200) -> dict:
    """The card's "diagnostics": action id usage and observation spread of a task's split."""
    from gato.data.storage import TaskDataset

    ds = TaskDataset(root, task_name)
    episodes = ds.episodes(split, limit=limit)
    if not episodes:
        return {}
    return action_stats(ds.spec, episodes, tm, text) | {"observation_std": observation_spread(episodes),
                                                        "episodes": len(episodes)}
