"""Learning curves: expert-normalised score of a fixed task subset against training tokens.

`gato train --eval-every N --eval-tasks ...` evaluates the model being trained after every N-th
step's checkpoint (greedy, prompted from the training data, a few episodes per task, seeds
disjoint from collection) and appends a point to RUN/curve.json, so a run shows when its agent
starts to play, not only its loss. `gato eval`'s report plots the curve of the run it evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gato.envs.registry import task_spec
from gato.evaluation.evaluate import DISCRETE_TEMPERATURE
from gato.evaluation.metrics import normalized, reference_means
from gato.io import write_json

CURVE_FILE = "curve.json"


def curve_point(model, text, task_names: tuple[str, ...], episodes: int, data: Path | None, *,
                decode: str = "argmax", seed: int = 100_000, device: str = "cpu",
                discrete_temperature: float | None = DISCRETE_TEMPERATURE) -> dict:
    """Per-task normalised scores of `model` now, and their mean (actions chosen as `gato eval`
    chooses them by default)."""
    from gato.envs import resolve
    from gato.envs.scores import load_scores
    from gato.evaluation.evaluate import rollout
    from gato.prompts import task_prompt

    ref, scores = load_scores(), {}
    for task in resolve(list(task_names)):
        spec = task_spec(task.name)
        prompt = task_prompt(data, task.name, spec, model.cfg, text)
        eps = rollout(model, task, spec, episodes, episodes, text=text, prompt=prompt, seed=seed, device=device,
                      decode=decode, discrete_temperature=discrete_temperature)
        scores[task.name] = normalized(float(np.mean([x["return"] for x in eps])), *reference_means(ref, task.name))
    valid = [v for v in scores.values() if v is not None]
    return {"scores": scores, "mean": float(np.mean(valid)) if valid else None,
            "above_50": int(sum(v >= 0.5 for v in valid))}


def append_point(run_dir: Path, point: dict) -> list[dict]:
    """Add a point to RUN/curve.json (atomically), replacing one of the same step (a resumed run)."""
    path = Path(run_dir) / CURVE_FILE
    points = json.loads(path.read_text()) if path.exists() else []
    points = [p for p in points if p["step"] != point["step"]] + [point]
    points.sort(key=lambda p: p["step"])
    write_json(path, points)
    return points


def plot_curve(points: list[dict], out: Path) -> Path:
    """Mean normalised score (and each task's) against training tokens, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = [p["tokens"] / 1e6 for p in points]
    for name in points[-1]["scores"]:
        ax.plot(x, [100 * (p["scores"].get(name) or 0) for p in points], lw=0.8, alpha=0.5, label=name)
    ax.plot(x, [100 * (p["mean"] or 0) for p in points], "k-o", lw=2, ms=3, label="mean")
    ax.axhline(50, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="training tokens (millions)", ylabel="% of expert score", title="learning curve")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def load_curve(checkpoint: Path) -> list[dict]:
    """The learning curve (curve.json) of the run the checkpoint belongs to, up to its step."""
    from gato.training.loading import checkpoint_folder

    folder = checkpoint_folder(Path(checkpoint))
    for where in (folder, folder.parent):
        if (where / CURVE_FILE).exists():
            return json.loads((where / CURVE_FILE).read_text())
    return []
