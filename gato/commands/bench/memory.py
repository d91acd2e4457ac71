"""`gato bench memory`: peak memory of training and acting per preset, each in a fresh process."""


from __future__ import annotations

import os
from pathlib import Path

import torch

from gato.config import get_preset


from gato.commands.bench.common import _report
from gato.device import resolve_device


def bench_memory(presets: tuple[str, ...] = ("gato-tiny", "gato-79m", "gato-364m", "gato-1.18b"),
                 batch_size: int = 1, steps: int = 2, measure_below_gb: float | None = None,
                 device: str = "auto", json: bool = False) -> dict:
    """Peak memory of training steps and of acting at full context, per preset.

    Each measurement runs in a fresh subprocess. On CUDA: torch.cuda.max_memory_allocated. On
    CPU: the process's peak resident memory (VmHWM, reset once the imports are done) minus its
    resident memory at that point, so it counts weights, gradients, optimizer state, activations
    and the generated training data, plus allocator slack. Training runs `steps` AdamW steps of
    `batch_size` x context (the second step is the first that holds the optimizer state); acting
    fills the context of one agent (Meta-World-sized steps) and acts 4 times. A preset whose
    training estimate (gato/scaling.py) is over `measure_below_gb` (default: half the device's
    memory) is not run: its figures are the estimate, marked "analytic". The estimates are
    printed beside every measurement.

    Args:
        presets: model presets.
        batch_size: sequences per training step.
        steps: training steps measured (2 includes the optimizer state).
        measure_below_gb: run only presets whose training estimate is below this (default: half the memory).
        device: auto, cpu or cuda.
        json: print one JSON object.
    """
    import subprocess
    import sys

    from gato import scaling
    from gato.training.distributed import LARGE_PRESETS

    device = resolve_device(device).type
    cuda = device == "cuda"
    total = torch.cuda.get_device_properties(0).total_memory if cuda \
        else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = total / 2 if measure_below_gb is None else measure_below_gb * 1e9
    per = {}
    for name in presets:
        cfg = get_preset(name)
        est_train = scaling.state_bytes(cfg) + batch_size * scaling.activation_bytes(
            cfg, bf16=cuda, checkpointing=name in LARGE_PRESETS, flash=cuda or cfg.dropout == 0)
        est_act = scaling.acting_bytes(cfg)
        row = {"analytic_train_bytes": int(est_train), "analytic_act_bytes": int(est_act)}
        if est_train > limit:
            row |= {"train_peak_bytes": int(est_train), "act_peak_bytes": int(est_act), "how": "analytic"}
        else:
            for kind in ("train", "act"):
                code = (f"from gato.commands.bench.memory import _memory_probe; "
                        f"_memory_probe({kind!r}, {name!r}, {batch_size}, {steps}, {device!r})")
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(f"memory probe {kind} {name} failed:\n{done.stderr[-2000:]}")
                row[f"{kind}_peak_bytes"] = int(done.stdout.split()[-1])
            row["how"] = "measured"
        per[name] = row
    result = {"bench": "memory", "device": device, "batch_size": batch_size, "context": "preset",
              "device_memory_bytes": total, "presets": per}
    gb = 1e9
    return _report(result, json, "\n".join(
        f"{name}: training {r['train_peak_bytes'] / gb:.2f} GB, acting {r['act_peak_bytes'] / gb:.2f} GB ({r['how']}; "
        f"estimate {r['analytic_train_bytes'] / gb:.2f} / {r['analytic_act_bytes'] / gb:.2f} GB)"
        for name, r in per.items()))


def _memory_probe(kind: str, preset: str, batch_size: int, steps: int, device: str) -> None:
    """Run in a fresh process by bench_memory: print the peak bytes of training or acting."""
    import numpy as np
    from gymnasium import spaces

    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.model import Gato
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    cuda = device == "cuda"
    start = _resident() if not cuda else 0
    if not cuda:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current resident size
    cfg = get_preset(preset)
    if kind == "train":
        trainer = Trainer(TrainConfig(preset=preset, steps=steps, batch_size=batch_size, warmup=1), device=device)
        for _ in range(steps):
            trainer.train_step(trainer.data.sample_batch(batch_size, cfg.context))
    else:
        model = Gato(cfg).to(device).eval()
        spec = TaskSpec("bench/memory", spaces.Box(-np.inf, np.inf, (39,), np.float32),
                        spaces.Box(-1, 1, (4,), np.float32))
        agent, rng = GatoAgent(model, spec, device=device), np.random.default_rng(0)
        while agent.cache is None or agent.cache.length < cfg.context - 88:
            agent.act([rng.normal(size=39).astype(np.float32)])
        for _ in range(4):
            agent.act([rng.normal(size=39).astype(np.float32)])
    print(torch.cuda.max_memory_allocated() if cuda else _peak_resident() - start)


def _resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_resident() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
