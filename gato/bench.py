"""`gato bench ...`: speed measured as ratios against a baseline run in the same process.

Machines here are shared and noisy, so absolute numbers are reported with the machine but the
figure of merit is the ratio; the two sides are interleaved in rounds and the median taken.
"""

from __future__ import annotations

import json as jsonlib
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gato.config import ModelConfig, get_preset
from gato.model import Block


def machine_info() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def resolve_device(device: str) -> torch.device:
    """auto, cpu or cuda -> a device, with an error naming the option before any work."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: expected auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    return torch.device(device)


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


def bench_train(preset: str = "gato-tiny", batch_size: int = 8, context: int = 0, rounds: int = 3,
                steps_per_round: int = 2, workers: int = 1, peak_tflops: float | None = None,
                device: str = "auto", precision: str = "auto", json: bool = False) -> dict:
    """Training tokens/s of a full Gato step (batch building included) vs a bare transformer.

    The bare transformer has the same blocks and dimensions, a plain embedding, and pre-made
    random ids. It is timed twice: as a plain language model (logits at every position: the
    `ratio`) and with logits only at as many positions as a Gato batch has targets
    (`ratio_same_targets`, which isolates the cost of Gato's embeddings and batch building).
    The Gato side gets its batches from the training data loader (`workers` processes; 0: built
    in the timed step). Where the device's bf16 peak is known (H100, H200, A100) or given, the
    result has the model FLOPs utilisation `mfu` (gato/scaling.py counts the FLOPs). Both sides run
    at `precision`; when that is bf16, the Gato step is also timed in fp32 in the same rounds
    (`bf16_speedup`: bf16 tokens/s over fp32 tokens/s).

    Args:
        preset: model preset.
        batch_size: sequences per step.
        context: tokens per sequence (0: the preset's context).
        rounds: interleaved measurement rounds (the median is reported).
        steps_per_round: optimizer steps per side per round.
        workers: data loader processes for the Gato side (0: batches built inside the timed step).
        peak_tflops: the device's peak in TFLOP/s (default: looked up for CUDA devices).
        device: auto, cpu or cuda.
        precision: auto, bf16 or fp32 (auto: bf16 on CUDA and on CPUs with bf16 matrix units).
        json: print one JSON object instead of a sentence.
    """
    from gato.data.loader import step_batches
    from gato.scaling import mfu, peak_flops
    from gato.training import precision as mp
    from gato.training.loss import target_mask
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    dev = resolve_device(device)
    cfg = get_preset(preset)
    T = context or cfg.context
    tcfg = TrainConfig(preset=preset, steps=10**9, batch_size=batch_size, context=T, warmup=1, workers=workers,
                       precision=precision)
    gato = Trainer(tcfg, device=dev.type)
    batches = step_batches(gato.data, gato.rows, T, 0, tcfg.steps, workers, pin_memory=dev.type == "cuda")

    torch.manual_seed(0)
    bare = BareTransformer(cfg).to(dev)
    opt = torch.optim.AdamW(bare.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=dev.type == "cuda")
    ids = torch.randint(0, cfg.token_map.size, (batch_size, T), device=dev)
    # The same share of target positions as a Gato batch, for the like-for-like baseline.
    same_targets = target_mask(gato.data.sample_batch(batch_size, T).loss_mask).to(dev)

    def bare_step(logits_at=None):
        with mp.autocast(gato.precision, dev):
            logits = bare(ids, logits_at)
            if logits_at is None:
                loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
            else:
                loss = F.cross_entropy(logits.float(), ids[logits_at])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bare.parameters(), 1.0)
        opt.step()

    sides = {"gato": lambda: gato.train_step(next(batches)),
             "bare_all_logits": bare_step, "bare_same_targets": lambda: bare_step(same_targets)}
    if gato.precision == "bf16":
        def fp32_step():
            gato.precision = "fp32"
            try:
                gato.train_step(next(batches))
            finally:
                gato.precision = "bf16"
        sides["gato_fp32"] = fp32_step
    times = {k: [] for k in sides}
    for fn in sides.values():  # warm-up
        fn()
    for _ in range(rounds):
        for k, fn in sides.items():
            times[k].append(sum(_time(fn, dev) for _ in range(steps_per_round)) / steps_per_round)
    tokens = batch_size * T
    tps = {k: tokens / statistics.median(v) for k, v in times.items()}
    g, b, s = tps["gato"], tps["bare_all_logits"], tps["bare_same_targets"]
    result = {"bench": "train", "preset": preset, "device": str(dev), "batch_size": batch_size,
              "context": T, "tokens_per_s": round(g, 1), "baseline_tokens_per_s": round(b, 1),
              "ratio": round(g / b, 3), "baseline_same_targets_tokens_per_s": round(s, 1),
              "ratio_same_targets": round(g / s, 3), "workers": workers, "precision": gato.precision}
    if "gato_fp32" in tps:
        result |= {"fp32_tokens_per_s": round(tps["gato_fp32"], 1), "bf16_speedup": round(g / tps["gato_fp32"], 3)}
    peak = peak_tflops * 1e12 if peak_tflops else peak_flops(torch.cuda.get_device_name(dev)) \
        if dev.type == "cuda" else None
    share = float(same_targets.float().mean())  # Gato computes logits only at targets
    result |= {"peak_flops": peak, "target_share": round(share, 3),
               "mfu": None if peak is None else round(mfu(g, cfg, T, peak, share), 4)}
    util = "" if peak is None else f"; MFU {result['mfu']:.1%} of {peak / 1e12:.0f} TFLOP/s"
    if "bf16_speedup" in result:
        util += f"; bf16 {result['bf16_speedup']:.2f}x the fp32 Gato step"
    return _report(result, json, f"{preset} on {dev} ({gato.precision}): Gato step {g:.0f} tokens/s; bare "
                                 f"transformer {b:.0f} tokens/s (logits everywhere, ratio {g / b:.3f}), {s:.0f} "
                                 f"tokens/s (logits at the same targets, ratio {g / s:.3f}){util}")


def bench_collect(tasks: tuple[str, ...] = ("control/cartpole", "box2d/lunarlander", "babyai/GoToLocal",
                                             "dmc/cartpole-swingup", "metaworld/pick-place"), episodes: int = 16,
                  rounds: int = 3, json: bool = False) -> dict:
    """Steps/s of recording expert episodes (checked, stored as Parquet) vs bare env stepping.

    Args:
        tasks: tasks to measure (same expert on both sides).
        episodes: episodes per side per round (one Parquet shard's worth: the shard write is timed).
        rounds: interleaved rounds (median).
        json: print one JSON object.
    """
    import tempfile
    from pathlib import Path

    from gato.data.episode import TaskSpec
    from gato.data.storage import DatasetWriter
    from gato.envs import get_task
    from gato.rollout import run_episode

    results = {}
    for name in tasks:
        task = get_task(name)
        env = task.make()
        expert = task.make_expert(env)
        spec = TaskSpec(name, env.observation_space, env.action_space)

        def bare(seed):
            obs, _ = env.reset(seed=seed)
            expert.reset(seed)
            for n in range(1, task.max_steps + 1):
                obs, _, term, trunc, _ = env.step(expert(obs))
                if term or trunc:
                    return n
            return task.max_steps

        def recorded(seed, writer):
            r = run_episode(task, env, expert, seed=seed)
            writer.add(r.episode, seed=seed)
            return r.length

        rates = {"bare": [], "recorded": []}
        with tempfile.TemporaryDirectory() as tmp:
            writer = DatasetWriter(Path(tmp), spec, {"expert": task.expert_kind}, shard_episodes=episodes)
            for r in range(rounds):
                seeds = range(r * episodes, (r + 1) * episodes)
                t = time.perf_counter()
                steps = sum(bare(s) for s in seeds)
                rates["bare"].append(steps / (time.perf_counter() - t))
                t = time.perf_counter()
                steps = sum(recorded(s, writer) for s in seeds)  # the last add writes the shard
                rates["recorded"].append(steps / (time.perf_counter() - t))
        env.close()
        b, rec = statistics.median(rates["bare"]), statistics.median(rates["recorded"])
        results[name] = {"bare_steps_per_s": round(b, 1), "recorded_steps_per_s": round(rec, 1),
                         "ratio": round(rec / b, 3)}
    result = {"bench": "collect", "tasks": results, "min_ratio": min(v["ratio"] for v in results.values())}
    return _report(result, json, "\n".join(
        f"{name}: recording {v['recorded_steps_per_s']:.0f} steps/s, bare {v['bare_steps_per_s']:.0f} steps/s, "
        f"ratio {v['ratio']:.3f}" for name, v in results.items()))


def bench_act(preset: str = "gato-tiny", obs_dim: int = 39, act_dim: int = 4, actions: int = 24,
              baseline: bool = True, device: str = "auto", json: bool = False) -> dict:
    """Actions/s of the KV-cached agent vs recomputing the full window for every action token,
    at a full context (Meta-World-sized by default: 39 observation values, 4 action tokens).

    Args:
        preset: model preset, or "all": every preset, one entry each under "presets".
        obs_dim: continuous observation values per step.
        act_dim: continuous action values per step (one token each).
        actions: actions timed per side.
        baseline: also time the agent without a cache (slow for the large presets on CPU).
        device: auto, cpu or cuda.
        json: print one JSON object.
    """
    from gato.config import PRESETS

    dev = resolve_device(device)
    names = list(PRESETS) if preset == "all" else [get_preset(preset).name]
    per = {name: _act(name, obs_dim, act_dim, actions, baseline, dev) for name in names}
    result = {"bench": "act", "preset": preset, "device": str(dev), "obs_tokens": obs_dim, "action_tokens": act_dim}
    result |= per[preset] if preset in per else {"presets": per}
    lines = [f"{name} on {dev} at {r['context']} tokens: {r['actions_per_s']:.1f} actions/s with the KV cache "
             f"({r['latency_ms']:.1f} ms per action)"
             + (f", {r['recompute_actions_per_s']:.1f} recomputing the window, ratio {r['ratio']:.1f}"
                if baseline else "")
             for name, r in per.items()]
    return _report(result, json, "\n".join(lines))


def _act(preset: str, obs_dim: int, act_dim: int, actions: int, baseline: bool, dev: torch.device) -> dict:
    import numpy as np
    from gymnasium import spaces

    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.data.sampling import collate
    from gato.model import Gato

    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = Gato(cfg).to(dev).eval()
    spec = TaskSpec("bench/act", spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
                    spaces.Box(-1, 1, (act_dim,), np.float32))
    agent = GatoAgent(model, spec, device=dev)
    rng = np.random.default_rng(0)
    obs = lambda: [rng.normal(size=obs_dim).astype(np.float32)]  # noqa: E731
    while agent.cache.length < cfg.context - 2 * (obs_dim + act_dim + 1):
        agent.act(obs())  # fill the context

    def cached():
        agent.act(obs())

    @torch.inference_mode()
    def recompute():  # what an agent without a cache does: a full-window forward per action token
        window = agent.window(0)
        w = window.slice(max(0, len(window) - cfg.context), len(window))
        batch = collate([w], len(w), cfg.token_map).to(dev)
        for _ in range(act_dim):
            model(*batch.inputs())

    times = {"cached": [], "recompute": []}
    for _ in range(actions):
        times["cached"].append(_time(cached, dev))
        if baseline:
            times["recompute"].append(_time(recompute, dev))
    c = statistics.mean(times["cached"])
    out = {"context": cfg.context, "actions_per_s": round(1 / c, 2), "latency_ms": round(1000 * c, 2)}
    if baseline:
        r = statistics.median(times["recompute"])
        out |= {"recompute_actions_per_s": round(1 / r, 2), "ratio": round(r / c, 2)}
    return out


def bench_eval(preset: str = "gato-tiny", task: str = "control/mountaincar", envs: int = 16, steps: int = 40,
               rounds: int = 3, device: str = "auto", json: bool = False) -> dict:
    """Environment steps/s of lock-step evaluation with N environments vs one, same task and model.

    An untrained model on MountainCar never reaches the flag, so every episode has the same
    length on both sides and steps/s is proportional to episodes/s. Each round starts fresh
    episodes on both sides (the same context lengths), one side after the other; the median
    round is reported.

    Args:
        preset: model preset.
        task: task to roll out.
        envs: environments stepped together.
        steps: agent steps timed per side and round (after a warm-up step).
        rounds: interleaved rounds (median).
        device: auto, cpu or cuda (each step reads the sampled actions back to the host, so
            the timing needs no extra synchronisation).
        json: print one JSON object.
    """
    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.envs import get_task
    from gato.model import Gato

    dev = resolve_device(device)
    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = Gato(cfg).eval().to(dev)
    t = get_task(task)

    def rate(n: int) -> float:
        environments = [t.make() for _ in range(n)]
        spec = TaskSpec(t.name, environments[0].observation_space, environments[0].action_space)
        agent = GatoAgent(model, spec, n, device=dev)
        obs = [e.reset(seed=i)[0] for i, e in enumerate(environments)]
        start = None
        for k in range(steps + 1):
            if k == 1:
                start = time.perf_counter()
            actions = agent.act(obs)
            for r, (e, a) in enumerate(zip(environments, actions)):
                o, _, term, trunc, _ = e.step(a)
                if term or trunc:
                    o, _ = e.reset(seed=1000 + k)
                    agent.reset([r])
                obs[r] = o
        return n * steps / (time.perf_counter() - start)

    rates = {1: [], envs: []}
    for _ in range(rounds):
        for n in rates:
            rates[n].append(rate(n))
    single, batched = statistics.median(rates[1]), statistics.median(rates[envs])
    result = {"bench": "eval", "preset": preset, "device": str(dev), "task": task, "envs": envs, "steps": steps,
              "rounds": rounds, "steps_per_s": round(batched, 1), "single_env_steps_per_s": round(single, 1),
              "ratio": round(batched / single, 2)}
    return _report(result, json, f"{preset} on {task}: {batched:.1f} steps/s with {envs} environments, "
                                 f"{single:.1f} with one, ratio {batched / single:.1f}")


def bench_generate(preset: str = "gato-tiny", tokens: int = 512, rounds: int = 3, device: str = "auto",
                   json: bool = False) -> dict:
    """Text tokens/s generated with the KV cache vs recomputing the window for every token.

    Args:
        preset: model preset.
        tokens: tokens generated per round (from a one-word prompt), so the window grows to this.
        rounds: interleaved rounds per side; the median is reported.
        device: auto, cpu or cuda.
        json: print one JSON object.
    """
    import numpy as np

    from gato.generation import generate, text_prompt
    from gato.model import Gato

    dev = resolve_device(device)
    cfg = get_preset(preset)
    if not 1 <= tokens < cfg.context:
        raise ValueError(f"tokens must be in [1, {cfg.context}) for {preset}, got {tokens}")
    torch.manual_seed(0)
    model = Gato(cfg).to(dev).eval()
    prompt = [text_prompt(np.array([7]), cfg.token_map)]
    times = {"cached": [], "recompute": []}
    for _ in range(rounds):
        for side in times:
            times[side].append(_time(lambda: generate(model, prompt, tokens, use_cache=side == "cached"), dev))
    c, r = statistics.median(times["cached"]), statistics.median(times["recompute"])
    result = {"bench": "generate", "preset": preset, "device": str(dev), "tokens": tokens,
              "tokens_per_s": round(tokens / c, 1), "recompute_tokens_per_s": round(tokens / r, 1),
              "ratio": round(r / c, 2)}
    return _report(result, json, f"{preset} on {dev}, {tokens} tokens: {tokens / c:.0f} tokens/s with the KV "
                                 f"cache, {tokens / r:.0f} recomputing, ratio {r / c:.1f}")


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
                code = (f"from gato.bench import _memory_probe; "
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
