"""`gato merge`: a checkpoint on the line between two checkpoints of one model.

A fine-tuning round (a DAgger round, a fine-tune on a task) gains on some tasks and forgets others;
the average of its weights with those it started from often keeps both (WiSE-FT, Wortsman et al.
2022). docs/quality.md measures it on DAgger round 9.
"""

from __future__ import annotations

from pathlib import Path

from tyro.conf import Positional

from gato.training import checkpoint as ckpt
from gato.training.config import TOKENIZER_FILE
from gato.training.loading import checkpoint_folder, load_tokenizer


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
    a, b, out = checkpoint_folder(first), checkpoint_folder(second), Path(out)
    meta_a, meta_b = ckpt.load_meta(a), ckpt.load_meta(b)
    if meta_a.get("model") != meta_b.get("model"):
        raise ValueError(f"{a} and {b} are different models ({meta_a.get('model')} vs {meta_b.get('model')}): "
                         "only checkpoints of one model can be merged")
    text_a, text = load_tokenizer(a), load_tokenizer(b)
    if text_a.sha256 != text.sha256:
        raise ValueError(f"{a} and {b} use different text tokenizers ({text_a.sha256[:12]} vs {text.sha256[:12]})")
    if out.exists():
        if not ((out / "config.json").is_file() and (out / "model.safetensors").is_file()):
            raise ValueError(f"--out {out} exists and is not a checkpoint: choose a new folder (nothing there is replaced)")
        if out.resolve() in (a.resolve(), b.resolve()):
            raise ValueError(f"--out {out} is one of the checkpoints being merged")
        if not force:
            raise ValueError(f"--out {out} already holds a checkpoint; pass --force to replace it")
    weights = ckpt.interpolate(ckpt.load_weights(a), ckpt.load_weights(b), weight)
    parents = [{"path": str(p), "step": m.get("step"), "weights_sha256": ckpt.weights_sha256(p)}
               for p, m in ((a, meta_a), (b, meta_b))]
    meta = {**meta_b, "merged": {"weight": weight, "parents": parents}}
    path = ckpt.save_checkpoint(out, weights=weights, meta=meta, files={TOKENIZER_FILE: text.to_bytes()})
    print(f"merged {a} and {b} (weight {weight} on the second) -> {path}")
    return path
