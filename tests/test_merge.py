"""`gato merge`: the weights on the line between two checkpoints, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gato.commands.merge import merge
from gato.training import checkpoint as ckpt
from gato.training.config import TOKENIZER_FILE
from gato.training.loading import load_model

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"


def _moved_copy(out: Path, scale: float = 0.01, **meta_changes) -> dict[str, torch.Tensor]:
    """The shipped checkpoint with every tensor moved by seeded noise (a stand-in for a fine-tune)."""
    gen = torch.Generator().manual_seed(0)
    weights = {k: v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype)
               for k, v in ckpt.load_weights(SHIPPED).items()}
    meta = {**ckpt.load_meta(SHIPPED), "step": 123, **meta_changes}
    ckpt.save_checkpoint(out, weights=weights, meta=meta,
                         files={TOKENIZER_FILE: (SHIPPED / TOKENIZER_FILE).read_bytes()})
    return weights


def test_merge_writes_the_interpolated_weights_and_both_parents(tmp_path):
    moved = _moved_copy(tmp_path / "tuned")
    base = ckpt.load_weights(SHIPPED)
    out = merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "mid", weight=0.25)
    got = ckpt.load_weights(out)
    for k in base:
        torch.testing.assert_close(got[k], 0.75 * base[k] + 0.25 * moved[k], rtol=0, atol=1e-6)
    meta = ckpt.load_meta(out)
    assert meta["step"] == 123 and meta["merged"]["weight"] == 0.25
    assert [p["weights_sha256"] for p in meta["merged"]["parents"]] == [
        ckpt.weights_sha256(SHIPPED), ckpt.weights_sha256(tmp_path / "tuned")]
    model, _ = load_model(out)  # acts like any checkpoint
    assert model.num_params() == sum(t.numel() for t in base.values())
    ends = merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "first", weight=0.0)
    assert all(torch.equal(ckpt.load_weights(ends)[k], base[k]) for k in base)


def test_a_config_saved_before_a_field_existed_merges_with_one_that_has_its_default(tmp_path):
    """The shipped checkpoint predates `observation_order`, so it reads Dicts in key order; a round
    trained from it saves the field ("key") and merges with it (`gato dagger --keep`). One that
    reads another order is another model."""
    model = ckpt.load_meta(SHIPPED)["model"]
    assert "observation_order" not in model
    _moved_copy(tmp_path / "round", model={**model, "observation_order": "key"})
    out = merge(SHIPPED, tmp_path / "round", out=tmp_path / "mid")
    assert ckpt.load_meta(out)["model"]["observation_order"] == "key"
    _moved_copy(tmp_path / "text-first", model={**model, "observation_order": "modality"})
    with pytest.raises(ValueError, match="are different models"):
        merge(SHIPPED, tmp_path / "text-first", out=tmp_path / "x")


def test_merge_refuses_other_models_bad_weights_and_existing_outputs(tmp_path):
    model = ckpt.load_meta(SHIPPED)["model"]
    _moved_copy(tmp_path / "wider", model={**model, "width": model["width"] * 2})
    with pytest.raises(ValueError, match=rf"are different models \(width: {model['width']} vs {model['width'] * 2}\)"):
        merge(SHIPPED, tmp_path / "wider", out=tmp_path / "x")
    _moved_copy(tmp_path / "tuned")
    with pytest.raises(ValueError, match=r"--weight 1.5 is outside \[0, 1\]"):
        merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "x", weight=1.5)
    assert not (tmp_path / "x").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a checkpoint"):
        merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "mid")
    with pytest.raises(ValueError, match="pass --force to replace it"):
        merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "mid", weight=0.7)
    merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "mid", weight=0.7, force=True)
    assert ckpt.load_meta(tmp_path / "mid")["merged"]["weight"] == 0.7
    with pytest.raises(ValueError, match="is a checkpoint being merged"):
        merge(SHIPPED, tmp_path / "tuned", out=tmp_path / "tuned", force=True)
