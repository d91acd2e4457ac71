"""Growing a trained model deeper (`--init` a shallower checkpoint; gato/training/growing.py): the
grown model computes what the trained one did, its copies learn, and other shapes are refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from gato.data.sampling import collate
from gato.training import checkpoint as ckpt
from gato.training.config import TrainConfig
from gato.training.growing import expansion, grow_depth
from gato.training.loading import load_model
from gato.training.trainer import Trainer

from conftest import SMALL

CFG = TrainConfig(steps=4, batch_size=2, context=64, lr=1e-3, warmup=1, data="synthetic")
DEEPER = dataclasses.replace(SMALL, num_layers=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 2-layer checkpoint (untrained weights are as good as any: every output projection is
    non-zero, so a copy that kept it would change the logits)."""
    return Trainer(CFG, SMALL).save(tmp_path_factory.mktemp("run"))


def test_expansion_puts_each_copy_after_the_block_it_copies():
    assert expansion(4, 6) == [0, 1, 1, 2, 3, 3]
    assert expansion(4, 8) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert expansion(2, 6) == [0, 0, 0, 1, 1, 1]
    assert expansion(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="not 6 to 4"):
        expansion(6, 4)


def test_grow_depth_zeroes_only_the_copies_output_projections(trained):
    weights = ckpt.load_weights(trained)
    grown = grow_depth(weights, 2, 4)  # blocks 0, 0', 1, 1'
    assert len(grown) == len(weights) + 2 * sum(k.startswith("blocks.0.") for k in weights)
    for name in ("attn.proj.weight", "mlp.proj.weight", "mlp.proj.bias"):
        assert torch.equal(grown[f"blocks.1.{name}"], torch.zeros_like(weights[f"blocks.0.{name}"]))
        assert torch.equal(grown[f"blocks.2.{name}"], weights[f"blocks.1.{name}"])
    assert torch.equal(grown["blocks.1.attn.qkv.weight"], weights["blocks.0.attn.qkv.weight"])
    assert torch.equal(grown["embed.weight"], weights["embed.weight"])


def test_a_grown_model_acts_as_the_trained_one_then_its_copies_learn(trained):
    trainer = Trainer(dataclasses.replace(CFG, init=str(trained)), DEEPER)
    original, _ = load_model(trained)
    rng = np.random.default_rng(0)
    batch = collate([s.sample(rng, 64) for s in trainer.data.sources], 64, trainer.model_cfg.token_map)
    trainer.model.eval()
    with torch.no_grad():
        grown_logits, _ = trainer.model(*batch.inputs())
        logits, _ = original(*batch.inputs())
    torch.testing.assert_close(grown_logits, logits, rtol=0, atol=1e-5)
    trainer.train_step(batch)
    copy = trainer.model.blocks[2]  # blocks 1 and 2 started as the same trained block (2 -> 3: 0, 1, 1)
    assert copy.attn.proj.weight.abs().sum() > 0 and copy.mlp.proj.weight.abs().sum() > 0


def test_init_refuses_a_deeper_or_other_shaped_checkpoint(trained, tmp_path):
    meta = ckpt.load_meta(trained)
    wider = tmp_path / "wider"
    ckpt.save_checkpoint(wider, weights=ckpt.load_weights(trained),
                         meta={**meta, "model": {**meta["model"], "width": 96, "num_layers": 1}})
    with pytest.raises(ValueError, match="width: 96 vs 64.*only the number of layers may be smaller"):
        Trainer(dataclasses.replace(CFG, init=str(wider)), DEEPER)
    with pytest.raises(ValueError, match="num_layers: 2 vs 1"):
        Trainer(dataclasses.replace(CFG, init=str(trained)), dataclasses.replace(SMALL, num_layers=1))
