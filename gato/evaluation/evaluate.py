"""`gato eval`: roll a trained model out on tasks, N environments in lock step per task, and score
it against the reference scores (expert-normalised, per domain, Figure 5)."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from gato.data.episode import TaskSpec
from gato.evaluation.metrics import normalized, performance_profile, summarize, threshold_curve
from gato.io import atomic_write
from gato.prompts import task_prompt

RESULTS_VERSION = 1
# Discrete action tokens are sampled, as the paper samples actions (a greedy discrete policy loops:
# docs/quality.md, Sampling discrete actions); continuous ones stay greedy.
DISCRETE_TEMPERATURE = 1.0


def check_temperatures(temperature: float, discrete_temperature: float | None) -> None:
    """The commands' check of their two temperature flags, before any model is loaded."""
    for flag, t in (("--temperature", temperature), ("--discrete-temperature", discrete_temperature)):
        if t is not None and not (t >= 0 and math.isfinite(t)):
            raise ValueError(f"{flag} must be a finite number >= 0 (0: greedy), got {t}")


def rollout(model, task, spec: TaskSpec, episodes: int, num_envs: int, *, text=None, prompt=None,
            temperature: float = 0.0, seed: int = 0, device: str = "cpu", decode: str = "argmax",
            timing: dict | None = None, progress: bool = False,
            discrete_temperature: float | None = None) -> list[dict]:
    """`episodes` episodes of `task` with N environments stepped in lock step (gato.rollout.run);
    one model forward per action token serves them all. `progress`: a bar over the episodes."""
    from gato.agent import GatoAgent
    from gato.rollout import run

    n = min(num_envs, episodes)
    bar = tqdm(total=episodes, desc=task.name, unit="episode", disable=not progress, leave=False)
    envs = [_CountEpisodes(task.make(sticky=True), task.max_steps, bar) for _ in range(n)]
    agent = GatoAgent(model, spec, n, text=text, prompt=prompt, temperature=temperature, seed=seed, device=device,
                      decode=decode, discrete_temperature=discrete_temperature)
    try:
        results = run(task, envs, agent, range(seed, seed + episodes), record=False, timing=timing)
    finally:
        bar.close()
        for env in envs:
            env.close()
    return [{"seed": r.seed, "return": r.ret, "length": r.length, "success": bool(r.success),
             "truncated": r.truncated} for r in results]


class _CountEpisodes(gym.Wrapper):
    """Advances a progress bar when an episode ends, by gato.rollout.run's rule: the task ends
    it, a time limit does, or it reaches the task's step cap."""

    def __init__(self, env: gym.Env, cap: int, bar: tqdm):
        super().__init__(env)
        self.cap, self.bar, self.steps = cap, bar, 0

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        out = self.env.step(action)
        self.steps += 1
        if out[2] or out[3] or self.steps >= self.cap:
            self.bar.update(1)
        return out


def prompt_source(checkpoint: Path, data: Path | None) -> Path | None:
    """Where prompts come from: DATA when given, else the checkpoint's own prompts/ (if any)."""
    from gato.prompts import checkpoint_prompts
    from gato.training.loading import checkpoint_folder

    return Path(data) if data is not None else checkpoint_prompts(checkpoint_folder(Path(checkpoint)))


def resolve_decode(decode: str, meta: dict) -> str:
    """`auto`: median for a checkpoint trained on Gaussian-histogram targets, else argmax."""
    if decode != "auto":
        return decode
    return "median" if meta.get("train", {}).get("target_sigma", 0.0) > 0 else "argmax"


def episode_scores(p: dict) -> list[float] | None:
    """A task result's per-episode expert-normalised scores (None without reference scores)."""
    if p["normalized"] is None:
        return None
    return [normalized(r, p["random"], p["expert"]) for r in p["returns"]]


def aggregate(per_task: dict) -> dict:
    """Per-domain and overall statistics of per-task results (each with its episodes' returns
    and reference scores): rliable's estimates with stratified-bootstrap intervals over episodes,
    the paper's Figure 5 count of tasks at each threshold, and rliable's performance profile."""
    domains: dict[str, list[list[float]]] = {}
    for p in per_task.values():
        if (scores := episode_scores(p)) is not None:
            domains.setdefault(p["domain"], []).append(scores)
    means = {d: [p["normalized"] for p in per_task.values() if p["domain"] == d and p["normalized"] is not None]
             for d in domains}
    summary = {d: summarize(v) | {"above_50": int(np.sum(np.asarray(means[d]) >= 0.5))}
               for d, v in sorted(domains.items())}
    allv = [v for vs in means.values() for v in vs]
    t, counts = threshold_curve(allv)
    overall = {"tasks_normalized": len(allv), "tasks_above_50": int(np.sum(np.asarray(allv) >= 0.5)),
               "curve": {"thresholds": t.tolist(), "tasks_at_or_above": counts.tolist()}}
    if allv:
        overall["profile"] = performance_profile([s for vs in domains.values() for s in vs])
    return {"tasks": per_task, "domains": summary, "overall": overall}


def record_video(model, text, task, out: Path, *, seed: int = 0, data: Path | None = None,
                 temperature: float = 0.0, max_frames: int = 400, device: str = "cpu", decode: str = "argmax",
                 discrete_temperature: float | None = None) -> dict:
    """One episode rendered with the environment's rgb_array mode, saved as an animated GIF."""
    from PIL import Image

    from gato.agent import GatoAgent
    from gato.rollout import run

    env = task.make(render_mode="rgb_array", sticky=True)
    spec = TaskSpec(task.name, env.observation_space, env.action_space)
    agent = GatoAgent(model, spec, 1, text=text, prompt=task_prompt(data, task.name, spec, model.cfg, text),
                      temperature=temperature, seed=seed, device=device, decode=decode,
                      discrete_temperature=discrete_temperature)
    frames = []
    try:
        r = run(task, [env], agent, [seed], record=False, on_step=lambda row, e: frames.append(e.render()))[0]
    finally:
        env.close()
    ret, steps = r.ret, r.length
    keep = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int)
    images = [Image.fromarray(np.asarray(frames[i], np.uint8)) for i in keep]
    path = out / f"{task.name.replace('/', '-')}-seed{seed}.gif"
    atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                  duration=40, loop=0))
    return {"task": task.name, "return": ret, "steps": steps, "video": str(path)}
