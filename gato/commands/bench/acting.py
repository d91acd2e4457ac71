"""`gato bench act|eval|generate`: the one-token step with the KV cache against recomputing."""


from __future__ import annotations

import statistics
import time

import torch

from gato.config import get_preset


from gato.commands.bench.common import _report, _time
from gato.device import resolve_device


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

    Both sides run the one rollout loop (gato.rollout.run), as `gato eval` does. An untrained
    model on MountainCar never reaches the flag, so every episode lasts exactly `steps` steps
    on both sides and steps/s is proportional to episodes/s. Each round starts fresh episodes on
    both sides (the same context lengths), one side after the other; the median round is
    reported.

    Args:
        preset: model preset.
        task: task to roll out.
        envs: environments stepped together.
        steps: agent steps per episode, timed per side and round.
        rounds: interleaved rounds (median).
        device: auto, cpu or cuda (each step reads the sampled actions back to the host, so
            the timing needs no extra synchronisation).
        json: print one JSON object.
    """
    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.envs import get_task
    from gato.model import Gato
    from gato.rollout import run

    dev = resolve_device(device)
    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = Gato(cfg).eval().to(dev)
    t = get_task(task)

    def rate(n: int) -> float:
        """Steps/s of the one rollout loop (gato.rollout.run) over n episodes of `steps` steps each."""
        environments = [t.make() for _ in range(n)]
        spec = TaskSpec(t.name, environments[0].observation_space, environments[0].action_space)
        agent = GatoAgent(model, spec, n, device=dev)
        start = time.perf_counter()
        results = run(t, environments, agent, range(n), max_steps=steps, record=False)
        elapsed = time.perf_counter() - start
        if any(r.length != steps for r in results):
            raise ValueError(f"{task}: an episode ended before {steps} steps; choose a task the untrained "
                             "model cannot finish (control/mountaincar)")
        return n * steps / elapsed

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
                   peer: bool = True, json: bool = False) -> dict:
    """Text tokens/s generated with the KV cache vs recomputing the window for every token, and
    (when transformers is installed) vs the field's standard decode loop: a Hugging Face Llama of
    the same width, depth, heads and feed-forward size, greedy `generate` with its default
    (dynamic) and its static cache.

    Args:
        preset: model preset.
        tokens: tokens generated per round (from a one-word prompt), so the window grows to this.
        rounds: interleaved rounds per side; the median is reported.
        device: auto, cpu or cuda.
        peer: also time the transformers Llama (skipped when transformers is not installed).
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
    line = (f"{preset} on {dev}, {tokens} tokens: {tokens / c:.0f} tokens/s with the KV cache, "
            f"{tokens / r:.0f} recomputing, ratio {r / c:.1f}")
    if peer and (llama := _peer_llama(cfg, tokens, rounds, dev)) is not None:
        best = max(llama.values())
        result |= {"peer": "transformers LlamaForCausalLM.generate", "peer_tokens_per_s": llama,
                   "peer_ratio": round(tokens / c / best, 2)}
        line += (f"; transformers Llama {llama['dynamic']:.0f} (dynamic cache), {llama['static']:.0f} (static "
                 f"cache): ours {tokens / c / best:.2f}x the faster")
    return _report(result, json, line)


def _peer_llama(cfg, tokens: int, rounds: int, dev) -> dict | None:
    """Tokens/s of greedy generation by a transformers Llama with gato's dimensions (random
    weights, the same vocabulary size), per cache kind; None without transformers."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.width, intermediate_size=cfg.mlp_hidden,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.context)).to(dev).eval()
    ids = torch.tensor([[7]], device=dev)
    out = {}
    for kind, kw in (("dynamic", {}), ("static", {"cache_implementation": "static"})):
        def run():
            with torch.inference_mode():
                llama.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0,
                               eos_token_id=None, **kw)
        run()  # warm-up (the static cache is allocated here)
        out[kind] = round(tokens / statistics.median(_time(run, dev) for _ in range(rounds)), 1)
    return out
