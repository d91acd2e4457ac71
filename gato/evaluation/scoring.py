"""One task's evaluation, saved the moment it finishes: `gato eval` keeps each task's scores in
OUT/tasks/<task>.json with the settings they were measured under, so a killed or extended
evaluation redoes only what is missing, and tasks can be scored in parallel worker processes
(each with its own copy of the model) while the results stay those of one run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from gato.envs.registry import task_spec
from gato.evaluation.evaluate import RESULTS_VERSION, rollout
from gato.evaluation.metrics import episode_scores, human_normalized, mean_ci, normalized, reference_means
from gato.io import read_json, write_json
from gato.prompts import matched_prompts, task_prompt


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Everything a task's scores depend on; a saved task result is reused only under equal settings."""
    weights_sha256: str
    episodes: int
    envs: int
    seed: int
    temperature: float
    decode: str
    prompts: str | None  # where prompts come from; None: unprompted
    version: int = RESULTS_VERSION
    discrete_temperature: float | None = None  # None: `temperature` (files from before it existed read so)
    prompt_match: bool | None = None  # True: each episode's prompt carries its mission; None: one per task


def task_file(out: Path, name: str) -> Path:
    return Path(out) / "tasks" / f"{name.replace('/', '-')}.json"


def saved_result(out: Path, name: str, settings: EvalSettings) -> dict | None:
    """The saved result of task `name` in OUT under these settings; None if there is none; an error
    when it was measured under other settings (so two evaluations are never mixed silently)."""
    path = task_file(out, name)
    if not path.exists():
        return None
    saved = read_json(path, "task result")
    got = saved.get("settings") if isinstance(saved, dict) else None
    if (diff := _differ(settings, got)) or saved.get("task") != name or not isinstance(saved.get("result"), dict):
        diff = diff or ["task"]
        raise ValueError(f"{path}: measured under other settings ({', '.join(diff)} differ); pass --force to "
                         f"evaluate again, or choose another --out")
    return saved["result"]


def check_results_file(out: Path, settings: EvalSettings) -> None:
    """An OUT/results.json of another evaluation (other weights, episodes, seed, ...) is never
    replaced silently: an error naming what differs (the caller's --force skips this check)."""
    path = Path(out) / "results.json"
    if not path.exists():
        return
    differ = _differ(settings, read_json(path, "results file"), skip=("version",))
    if differ:
        raise ValueError(f"{path} holds another evaluation ({', '.join(differ)} differ); pass --force to replace "
                         f"it, or choose another --out")


def _differ(settings: EvalSettings, saved, skip: tuple[str, ...] = ()) -> list[str]:
    """The settings fields a saved record (a dict of them) does not match; all of them if it is no dict."""
    want = dataclasses.asdict(settings)
    return sorted(k for k in want if k not in skip and (not isinstance(saved, dict) or saved.get(k) != want[k]))


def score_task(model, text, task, settings: EvalSettings, *, device: str, progress: bool, ref: dict) -> dict:
    """Roll the model out on `task` (settings.episodes episodes) and score the returns against the
    reference scores: mean, expert-normalised mean with its bootstrap interval, success rate."""
    spec = task_spec(task.name)
    prompts = None if settings.prompts is None else Path(settings.prompts)
    # the task's episodes are read once: a mission-matching chooser also gives the task's own prompt
    chosen = matched_prompts(prompts, task.name, spec, model.cfg, text) if settings.prompt_match else None
    task_p = chosen(None) if chosen else task_prompt(prompts, task.name, spec, model.cfg, text)
    if prompts is not None and task_p is None:
        print(f"{task.name}: no training episodes in {prompts}, so no prompt (collect the task to prompt it)")
    clock: dict = {}
    t0 = time.perf_counter()
    eps = rollout(model, task, spec, settings.episodes, settings.envs, text=text, prompt=chosen or task_p,
                  temperature=settings.temperature, discrete_temperature=settings.discrete_temperature,
                  seed=settings.seed, device=device, decode=settings.decode,
                  timing=clock, progress=progress)
    rets = np.array([e["return"] for e in eps])
    r, e = reference_means(ref, task.name)
    norm = normalized(float(rets.mean()), r, e)
    return {
        "domain": task.domain, "episodes": len(eps), "mean": float(rets.mean()), "std": float(rets.std()),
        "returns": rets.tolist(), "random": r, "expert": e, "normalized": norm,
        "human_normalized": human_normalized(task.name, float(rets.mean())),
        # 95% bootstrap interval of the normalised mean, over this task's episodes (rliable)
        "normalized_ci": None if norm is None else mean_ci(episode_scores(rets, r, e)),
        "success_rate": float(np.mean([x["success"] for x in eps])) if task.success else None,
        "prompt_tokens": 0 if task_p is None else len(task_p),
        "act_s": round(clock["act"], 2), "env_s": round(clock["env"], 2),
        "seconds": round(time.perf_counter() - t0, 2)}


def save_result(out: Path, name: str, settings: EvalSettings, result: dict) -> dict:
    write_json(task_file(out, name), {"task": name, "settings": dataclasses.asdict(settings), "result": result})
    return result


@dataclasses.dataclass(frozen=True)
class TaskJob:
    """One task for a worker process: the resolved checkpoint folder (so every worker scores the
    same weights), where to save, and the worker's share of the CPU threads."""
    checkpoint: str
    task: str
    settings: EvalSettings
    out: str
    device: str
    threads: int


_LOADED: dict = {}  # per worker process: checkpoint folder -> (model, meta, tokenizer)


def run_job(job: TaskJob) -> tuple[str, dict]:
    """Score and save one task in a worker process, loading the model once per process."""
    import torch

    from gato.envs import get_task
    from gato.envs.scores import load_scores
    from gato.training.loading import load_checkpoint

    if job.checkpoint not in _LOADED:
        torch.set_num_threads(job.threads)
        _LOADED.clear()
        _LOADED[job.checkpoint] = load_checkpoint(Path(job.checkpoint), job.device)
    model, _, text = _LOADED[job.checkpoint]
    result = score_task(model, text, get_task(job.task), job.settings, device=job.device, progress=False,
                        ref=load_scores())
    return job.task, save_result(Path(job.out), job.task, job.settings, result)


def cost_order(tasks: list) -> list:
    """Most expensive first, so parallel workers finish together: pixel tasks, then long episodes."""
    return sorted(tasks, key=lambda t: (t.domain == "atari", t.max_steps), reverse=True)
