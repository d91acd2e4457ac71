"""A checkpoint on the line between two checkpoints of one model (WiSE-FT, Wortsman et al. 2022).

A fine-tuning round (a DAgger round, a fine-tune on a task) gains on some tasks and forgets others;
the average of its weights with those it started from can keep both (docs/quality.md, rounds 9
and 10). `gato merge` and `gato dagger --keep` write such checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from gato.config import ModelConfig, config_diff
from gato.training import checkpoint as ckpt
from gato.training.config import TOKENIZER_FILE
from gato.training.loading import checkpoint_folder, load_tokenizer


def merge_checkpoints(first: Path, second: Path, out: Path, weight: float) -> Path:
    """Write (1 - weight) * first + weight * second to OUT (atomically, replacing it), with
    second's config and a record of both parents (path, step, weights' sha256) under "merged"."""
    a, b = checkpoint_folder(first), checkpoint_folder(second)
    meta_a, meta_b = ckpt.load_meta(a), ckpt.load_meta(b)
    # compared as configs, so a field added since one of them was saved takes its default there
    model_a, model_b = (ModelConfig.from_dict(m["model"]).to_dict() for m in (meta_a, meta_b))
    if model_a != model_b:
        raise ValueError(f"{a} and {b} are different models ({config_diff(model_a, model_b)}): "
                         "only checkpoints of one model can be merged")
    text_a, text = load_tokenizer(a), load_tokenizer(b)
    if text_a.sha256 != text.sha256:
        raise ValueError(f"{a} and {b} use different text tokenizers ({text_a.sha256[:12]} vs {text.sha256[:12]})")
    weights = ckpt.interpolate(ckpt.load_weights(a), ckpt.load_weights(b), weight)
    parents = [{"path": str(p), "step": m.get("step"), "weights_sha256": ckpt.weights_sha256(p)}
               for p, m in ((a, meta_a), (b, meta_b))]
    meta = {**meta_b, "merged": {"weight": weight, "parents": parents}}
    return ckpt.save_checkpoint(Path(out), weights=weights, meta=meta, files={TOKENIZER_FILE: text.to_bytes()})
