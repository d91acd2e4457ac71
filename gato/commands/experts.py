"""`gato experts train-ars`: the recipe behind the committed MuJoCo locomotion experts
(gato/experts/ars.py trains them)."""

from __future__ import annotations

from pathlib import Path


def ars_train(env: str = "Hopper-v5", iterations: int = 300, out: Path | None = None, seed: int = 0,
              workers: int = 1) -> None:
    """Train an ARS expert for a Gymnasium MuJoCo env; the best policy goes to `out`
    (default runs/ars/<name>.npz; the committed experts live in gato/experts/weights/)."""
    from gato.experts.ars_training import train_ars

    out = Path(out) if out else Path("runs/ars") / f"{env.split('-')[0].lower()}.npz"
    _, meta = train_ars(env, iterations, seed=seed, workers=workers, out=out)
    print(f"best: eval return {meta['eval_return']:.1f} at iteration {meta.get('iterations')} -> {out}")
