"""`gato experts train-ars`: the recipe behind the committed MuJoCo locomotion experts
(gato/experts/ars.py trains them)."""

from __future__ import annotations

from pathlib import Path


def ars_train(env: str = "Hopper-v5", iterations: int = 300, out: Path | None = None, seed: int = 0,
              workers: int = 1) -> None:
    """Train an ARS expert for a Gymnasium MuJoCo env; the best policy goes to `out`
    (default runs/ars/<name>.npz; the committed experts live in gato/experts/weights/).

    Args:
        env: Gymnasium environment id (Hopper-v5, Walker2d-v5, ...); its preset step size, noise
            and directions are in gato/experts/ars.py (PRESETS).
        iterations: ARS updates; each rolls out two episodes per direction.
        out: where the best policy so far is saved (.npz), after every new best.
        seed: seed of the random directions and rollouts.
        workers: parallel processes for the rollouts.
    """
    from gato.experts.ars_training import train_ars

    if iterations < 1 or workers < 1:
        raise ValueError(f"iterations and workers must be >= 1, got {iterations} and {workers}")
    out = Path(out) if out else Path("runs/ars") / f"{env.split('-')[0].lower()}.npz"
    _, meta = train_ars(env, iterations, seed=seed, workers=workers, out=out)
    print(f"best: eval return {meta['eval_return']:.1f} at iteration {meta.get('iterations')} -> {out}")
