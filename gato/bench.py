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
                steps_per_round: int = 2, device: str = "auto", json: bool = False) -> dict:
    """Training tokens/s of a full Gato step (batch building included) vs a bare transformer.

    The bare transformer has the same blocks and dimensions, a plain embedding, and pre-made
    random ids. It is timed twice: as a plain language model (logits at every position: the
    `ratio`) and with logits only at as many positions as a Gato batch has targets
    (`ratio_same_targets`, which isolates the cost of Gato's embeddings and batch building).

    Args:
        preset: model preset.
        batch_size: sequences per step.
        context: tokens per sequence (0: the preset's context).
        rounds: interleaved measurement rounds (the median is reported).
        steps_per_round: optimizer steps per side per round.
        device: auto, cpu or cuda.
        json: print one JSON object instead of a sentence.
    """
    from gato.training.loss import target_mask
    from gato.training.trainer import TrainConfig, Trainer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    cfg = get_preset(preset)
    T = context or cfg.context
    tcfg = TrainConfig(preset=preset, steps=10**9, batch_size=batch_size, context=T, warmup=1)
    gato = Trainer(tcfg, device=device)

    torch.manual_seed(0)
    bare = BareTransformer(cfg).to(dev)
    opt = torch.optim.AdamW(bare.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=dev.type == "cuda")
    ids = torch.randint(0, cfg.token_map.size, (batch_size, T), device=dev)
    # The same share of target positions as a Gato batch, for the like-for-like baseline.
    same_targets = target_mask(gato.data.sample_batch(batch_size, T).loss_mask).to(dev)

    def bare_step(logits_at=None):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = bare(ids, logits_at)
            if logits_at is None:
                loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
            else:
                loss = F.cross_entropy(logits.float(), ids[logits_at])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bare.parameters(), 1.0)
        opt.step()

    sides = {"gato": lambda: gato.train_step(gato.data.sample_batch(batch_size, T)),
             "bare_all_logits": bare_step, "bare_same_targets": lambda: bare_step(same_targets)}
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
              "ratio_same_targets": round(g / s, 3)}
    return _report(result, json, f"{preset} on {dev}: Gato step {g:.0f} tokens/s; bare transformer {b:.0f} "
                                 f"tokens/s (logits everywhere, ratio {g / b:.3f}), {s:.0f} tokens/s (logits at "
                                 f"the same targets, ratio {g / s:.3f})")


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
    from gato.envs.rollout import run_episode

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
              device: str = "auto", json: bool = False) -> dict:
    """Actions/s of the KV-cached agent vs recomputing the full window for every action token,
    at a full context (Meta-World-sized by default: 39 observation values, 4 action tokens).

    Args:
        preset: model preset.
        obs_dim: continuous observation values per step.
        act_dim: continuous action values per step (one token each).
        actions: actions timed per side.
        device: auto, cpu or cuda.
        json: print one JSON object.
    """
    import numpy as np
    from gymnasium import spaces

    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.data.sampling import collate
    from gato.model import Gato

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
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

    @torch.no_grad()
    def recompute():  # what an agent without a cache does: a full-window forward per action token
        window = agent.window(0)
        w = window.slice(max(0, len(window) - cfg.context), len(window))
        batch = collate([w], len(w), cfg.token_map).to(dev)
        for _ in range(act_dim):
            model(*batch.inputs())

    times = {"cached": [], "recompute": []}
    for _ in range(actions):
        times["cached"].append(_time(cached, dev))
        times["recompute"].append(_time(recompute, dev))
    c, r = statistics.mean(times["cached"]), statistics.median(times["recompute"])
    result = {"bench": "act", "preset": preset, "device": str(dev), "context": cfg.context,
              "obs_tokens": obs_dim, "action_tokens": act_dim, "actions_per_s": round(1 / c, 2),
              "latency_ms": round(1000 * c, 2), "recompute_actions_per_s": round(1 / r, 2),
              "ratio": round(r / c, 2)}
    return _report(result, json, f"{preset} on {dev} at {cfg.context} tokens: {1 / c:.1f} actions/s with the "
                                 f"KV cache, {1 / r:.1f} recomputing the window, ratio {r / c:.1f}")


def bench_eval(preset: str = "gato-tiny", task: str = "control/mountaincar", envs: int = 16, steps: int = 40,
               rounds: int = 3, json: bool = False) -> dict:
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
        json: print one JSON object.
    """
    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.envs import get_task
    from gato.model import Gato

    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = Gato(cfg).eval()
    t = get_task(task)

    def rate(n: int) -> float:
        environments = [t.make() for _ in range(n)]
        spec = TaskSpec(t.name, environments[0].observation_space, environments[0].action_space)
        agent = GatoAgent(model, spec, n)
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
    result = {"bench": "eval", "preset": preset, "task": task, "envs": envs, "steps": steps, "rounds": rounds,
              "steps_per_s": round(batched, 1), "single_env_steps_per_s": round(single, 1),
              "ratio": round(batched / single, 2)}
    return _report(result, json, f"{preset} on {task}: {batched:.1f} steps/s with {envs} environments, "
                                 f"{single:.1f} with one, ratio {batched / single:.1f}")
