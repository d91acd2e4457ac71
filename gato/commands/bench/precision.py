"""`gato bench precision`: does bfloat16 inference keep the agent's action choices, and is it faster?"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from tyro.conf import Positional

from gato.commands.bench.common import _report
from gato.device import resolve_device
from gato.tokenization.vocab import Kind
from gato.training.config import TrainConfig, build_mixture
from gato.training.loading import load_checkpoint
from gato.training.loss import target_mask
from gato.training.precision import autocast

SHIPPED = Path(__file__).resolve().parents[3] / "checkpoints" / "gato-tiny"


def bench_precision(checkpoint: Positional[Path] = SHIPPED, data: Path = Path("data/suite"), batches: int = 4,
                    batch_size: int = 8, device: str = "auto", json: bool = False) -> dict:
    """Agreement of bfloat16 (autocast) with float32 inference: at every action target of
    training windows from DATA, the same greedy token (argmax) or not, and for continuous actions
    the mean distance in bins; plus the time of one batched forward in each precision.

    Args:
        checkpoint: a checkpoint (default: the shipped gato-tiny).
        data: a dataset root with tasks the checkpoint was trained on.
        batches: batches of windows compared.
        batch_size: windows per batch (of the checkpoint's training context).
        device: auto, cpu, cuda or cuda:N.
        json: print one JSON line.
    """
    if batches < 1 or batch_size < 1:
        raise ValueError(f"batches and batch_size must be >= 1, got {batches} and {batch_size}")
    if not Path(data).is_dir():
        raise ValueError(f"--data {data} is not a folder (a dataset root made by `gato collect`)")
    dev = resolve_device(device)
    model, meta, text = load_checkpoint(checkpoint, str(dev))
    T = model.cfg.context
    # the checkpoint's recipe on DATA; its task weights may name tasks DATA does not hold
    cfg = dataclasses.replace(TrainConfig.from_dict(meta["train"]), data=str(data), vl_weight=0.0, init="",
                              task_weights=())
    mixture = build_mixture(cfg, model.cfg, text, T)
    same = {"discrete": [0, 0], "continuous": [0, 0]}
    bins, seconds = [], {"fp32": 0.0, "bf16": 0.0}
    with torch.no_grad():
        for s in range(batches):
            b = mixture.batch(s, range(batch_size), T).to(dev)
            at = target_mask(b.loss_mask)
            nxt = torch.zeros_like(b.kinds)
            nxt[:, :-1] = b.kinds[:, 1:]
            kinds = nxt[at]
            preds = {}
            for p in ("fp32", "bf16"):
                t0 = time.perf_counter()
                with autocast(p, dev):
                    logits, _ = model(*b.inputs(), logits_at=at)
                preds[p] = logits.float().argmax(-1)
                seconds[p] += time.perf_counter() - t0
            for name, kind in (("discrete", Kind.DISCRETE_ACTION), ("continuous", Kind.CONTINUOUS_ACTION)):
                m = kinds == int(kind)
                same[name][0] += int((preds["fp32"][m] == preds["bf16"][m]).sum())
                same[name][1] += int(m.sum())
            m = kinds == int(Kind.CONTINUOUS_ACTION)
            bins.extend((preds["fp32"][m] - preds["bf16"][m]).abs().tolist())
    agree = {k: (round(a / n, 4) if n else None) for k, (a, n) in same.items()}
    result = {"bench": "precision", "checkpoint": str(checkpoint), "device": str(dev), "windows": batches * batch_size,
              "context": T, "action_targets": {k: n for k, (_, n) in same.items()}, "agreement": agree,
              "continuous_mean_bin_distance": round(sum(bins) / len(bins), 3) if bins else None,
              "fp32_s": round(seconds["fp32"], 3), "bf16_s": round(seconds["bf16"], 3),
              "bf16_speedup": round(seconds["fp32"] / seconds["bf16"], 2)}
    return _report(result, json, f"bf16 vs fp32 greedy action tokens: discrete {agree['discrete']}, continuous "
                                 f"{agree['continuous']} agree (mean {result['continuous_mean_bin_distance']} bins apart); "
                                 f"forward {result['bf16_speedup']}x the fp32 speed")
