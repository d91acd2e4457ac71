"""Growing a trained model deeper (`--init` a shallower checkpoint; gato/training/growing.py): the
grown model computes what the trained one did, its copies learn, and other shapes are refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from gato.config import get_preset
from gato.data.sampling import collate
from gato.training import checkpoint as ckpt
from gato.training.config import TrainConfig
from gato.training.growing import expansion, grow_depth
from gato.training.loading import load_model
from gato.training.trainer import Trainer

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"
CFG = TrainConfig(steps=4, batch_size=2, context=64, lr=1e-3, warmup=1, data="synthetic", init=str(SHIPPED))


def test_expansion_puts_each_copy_after_the_block_it_copies():
    assert expansion(4, 6) == [0, 1, 1, 2, 3, 3]
    assert expansion(4, 8) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert expansion(2, 6) == [0, 0, 0, 1, 1, 1]
    assert expansion(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="not 6 to 4"):
        expansion(6, 4)


def test_grow_depth_zeroes_only_the_copies_output_projections():
    weights = ckpt.load_weights(SHIPPED)
    grown = grow_depth(weights, 4, 6)
    assert len(grown) == len(weights) + 2 * sum(k.startswith("blocks.0.") for k in weights)
    for name in ("attn.proj.weight", "mlp.proj.weight", "mlp.proj.bias"):
        assert torch.equal(grown[f"blocks.2.{name}"], torch.zeros_like(weights[f"blocks.1.{name}"]))
        assert torch.equal(grown[f"blocks.3.{name}"], weights[f"blocks.2.{name}"])
    assert torch.equal(grown["blocks.2.attn.qkv.weight"], weights["blocks.1.attn.qkv.weight"])
    assert torch.equal(grown["embed.weight"], weights["embed.weight"])


def test_a_grown_model_acts_as_the_trained_one_then_its_copies_learn():
    trainer = Trainer(CFG, get_preset("gato-tiny-deep"))
    original, _ = load_model(SHIPPED)
    rng = np.random.default_rng(0)
    batch = collate([s.sample(rng, 64) for s in trainer.data.sources], 64, trainer.model_cfg.token_map)
    trainer.model.eval()
    with torch.no_grad():
        grown_logits, _ = trainer.model(*batch.inputs())
        logits, _ = original(*batch.inputs())
    torch.testing.assert_close(grown_logits, logits, rtol=0, atol=1e-5)
    trainer.train_step(batch)
    copy = trainer.model.blocks[2]  # blocks 1 and 2 started as the same trained block
    assert copy.attn.proj.weight.abs().sum() > 0 and copy.mlp.proj.weight.abs().sum() > 0


def test_init_refuses_a_deeper_or_other_shaped_checkpoint(tmp_path):
    meta = ckpt.load_meta(SHIPPED)
    wider = tmp_path / "wider"
    ckpt.save_checkpoint(wider, weights=ckpt.load_weights(SHIPPED),
                         meta={**meta, "model": {**meta["model"], "width": 256, "num_layers": 2}})
    with pytest.raises(ValueError, match="width: 256 vs 192.*only the number of layers may be smaller"):
        Trainer(dataclasses.replace(CFG, init=str(wider)), get_preset("gato-tiny-deep"))
    with pytest.raises(ValueError, match="num_layers: 4 vs 2"):
        Trainer(CFG, get_preset("gato-tiny", num_layers=2))
