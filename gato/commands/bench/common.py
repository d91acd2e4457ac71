"""What every bench shares: the machine, the device, the timer, the bare transformer baseline."""


from __future__ import annotations

import json as jsonlib
import os
import platform
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import ModelConfig
from gato.model import Block
from gato.training.precision import cpu_bf16_units, cpu_model


def machine_info() -> dict:
    """What a figure depends on: the CPU model and its bf16 matrix units (machines of one kind
    here come with AMD EPYC or Intel Xeon CPUs whose per-op costs differ widely), threads, torch."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu_model(), "bf16_units": cpu_bf16_units(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


class BareTransformer(nn.Module):
    """The same blocks as Gato with a plain token embedding: the baseline for the training bench."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.width)

    def forward(self, ids, logits_at=None):
        B, T = ids.shape
        x = self.embed(ids)
        pos = torch.arange(T, device=ids.device).expand(B, T)
        for block in self.blocks:
            x, _ = block(x, pos)
        if logits_at is not None:
            x = x[logits_at]
        return F.linear(self.ln_f(x), self.embed.weight)


def _report(result: dict, json: bool, sentence: str) -> dict:
    """Stamp a bench result with the date and machine; print it as JSON or as a sentence."""
    result |= {"date": time.strftime("%Y-%m-%d"), "machine": machine_info()}
    print(jsonlib.dumps(result) if json else sentence)
    return result


def _time(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t
