"""`gato bench train` and `gato bench collect`: training and collection throughput against baselines."""


from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gato.config import get_preset


from gato.commands.bench.common import BareTransformer, _report, _time
from gato.device import resolve_device


def bench_train(preset: str = "gato-tiny", batch_size: int = 8, context: int = 0, rounds: int = 3,
                steps_per_round: int = 2, loader_workers: int = 1, peak_tflops: float | None = None,
                device: str = "auto", precision: str = "auto", json: bool = False) -> dict:
    """Training tokens/s of a full Gato step (batch building included) vs a bare transformer.

    The bare transformer has the same blocks and dimensions, a plain embedding, and pre-made
    random ids. It is timed twice: as a plain language model (logits at every position: the
    `ratio`) and with logits only at as many positions as a Gato batch has targets
    (`ratio_same_targets`, which isolates the cost of Gato's embeddings and batch building).
    The Gato side gets its batches from the training data loader (`loader_workers` processes; 0: built
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
        loader_workers: data loader processes for the Gato side (0: batches built inside the timed step).
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
    tcfg = TrainConfig(preset=preset, steps=10**9, batch_size=batch_size, context=T, warmup=1,
                       loader_workers=loader_workers, precision=precision)
    gato = Trainer(tcfg, device=dev.type)
    batches = step_batches(gato.data, gato.rows, T, 0, tcfg.steps, loader_workers, pin_memory=dev.type == "cuda")

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
              "ratio_same_targets": round(g / s, 3), "loader_workers": loader_workers, "precision": gato.precision}
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
                  rounds: int = 7, json: bool = False) -> dict:
    """Steps/s of recording expert episodes (checked, stored as Parquet) vs bare env stepping.

    The ratio is the median of each round's ratio: a round times both sides back to back, so a
    slow spell of a shared machine slows both (one round's bare 8 us and recorded 10 us a
    CartPole step can be 11 and 14 the next).

    Args:
        tasks: tasks to measure (same expert on both sides).
        episodes: episodes per side per round (one Parquet shard's worth: the shard write is timed).
        rounds: interleaved rounds, after one untimed round that pays for imports.
        json: print one JSON object.
    """
    import tempfile

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
            for r in range(-1, rounds):  # round -1: warm-up, not kept
                seeds = range((r + 1) * episodes, (r + 2) * episodes)
                t = time.perf_counter()
                steps = sum(bare(s) for s in seeds)
                rates["bare"].append(steps / (time.perf_counter() - t))
                t = time.perf_counter()
                steps = sum(recorded(s, writer) for s in seeds)  # the last add writes the shard
                rates["recorded"].append(steps / (time.perf_counter() - t))
        env.close()
        b, rec = statistics.median(rates["bare"][1:]), statistics.median(rates["recorded"][1:])
        ratios = [x / y for x, y in zip(rates["recorded"][1:], rates["bare"][1:])]
        results[name] = {"bare_steps_per_s": round(b, 1), "recorded_steps_per_s": round(rec, 1),
                         "ratio": round(statistics.median(ratios), 3),
                         "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    result = {"bench": "collect", "tasks": results, "min_ratio": min(v["ratio"] for v in results.values())}
    return _report(result, json, "\n".join(
        f"{name}: recording {v['recorded_steps_per_s']:.0f} steps/s, bare {v['bare_steps_per_s']:.0f} steps/s, "
        f"ratio {v['ratio']:.3f} (rounds {v['ratio_range'][0]:.2f}-{v['ratio_range'][1]:.2f})"
        for name, v in results.items()))
