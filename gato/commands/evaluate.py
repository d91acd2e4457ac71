"""`gato eval` and `gato play`: a checkpoint acting in its tasks, scored against the experts
(gato/evaluation/ holds the rollouts, scores, report and learning curves)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from gato.device import resolve_device
from gato.evaluation.curve import load_curve
from gato.evaluation.evaluate import (DISCRETE_TEMPERATURE, RESULTS_VERSION, aggregate, check_temperatures,
                                      prompt_source, record_video, resolve_decode)
from gato.evaluation.scoring import (EvalSettings, TaskJob, check_results_file, cost_order, run_job, save_result,
                                     saved_result, score_task)
from gato.io import folder_lock, write_json
from gato.rollout import parallel_map
from gato.suites import with_suite
from gato.training.checkpoint import weights_sha256
from gato.training.loading import checkpoint_folder, load_checkpoint


MAX_ENVS = 64  # the default batch: a 50-episode task in one pass (50 Atari environments: about 2.4 GB a worker)


def evaluate(checkpoint: Positional[Path], tasks: tuple[str, ...] | None = None, suite: str | None = None,
             episodes: int = 50, envs: int = 0, out: Path = Path("runs/eval"), data: Path | None = None, temperature: float = 0.0,
             seed: int = 100_000, device: str = "auto", videos: int = 3, vl: bool = True,
             vl_examples: int = 200, decode: Literal["auto", "argmax", "median"] = "auto",
             prompt: bool = True, prompt_match: bool = False, workers: int = 1, force: bool = False,
             progress: bool = True,
             discrete_temperature: float | None = DISCRETE_TEMPERATURE) -> dict:
    """Evaluate a checkpoint on tasks: OUT/results.json, report.md/.html with plots, a per-domain summary.

    Each task's scores are saved in OUT/tasks/ as soon as it finishes: run the same command again
    (after a kill, or with more tasks) and only the missing tasks are evaluated.

    Args:
        checkpoint: checkpoint folder or run folder (newest checkpoint).
        tasks: task and/or domain names (default: the control domain, or none when a suite is given).
        suite: also every task of this named suite (quick, demo, core, heldout; gato/suites.py).
        episodes: episodes per task (the paper uses 50).
        envs: environments stepped together per task (0: all of its episodes at once, up to
            64, so no short batch of leftover episodes runs alone at the end).
        out: results folder.
        data: dataset root for prompts and the vision-language sets (default: prompts the checkpoint carries).
        temperature: 0 for greedy continuous action tokens, else their sampling temperature
            (and the discrete ones' when DISCRETE_TEMPERATURE is None).
        seed: first reset seed (disjoint from collection and reference-score seeds).
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
        videos: replay videos (GIF) recorded for this many tasks and linked in the report.
        vl: also score the vision-language and text sets of DATA (perplexity, BLEU-4, CIDEr, VQA).
        vl_examples: held-out examples scored per set and split (0: all).
        decode: greedy continuous action tokens: the most likely bin (argmax), the median of the
            predicted distribution, or auto (median for checkpoints trained on Gaussian-histogram
            targets, argmax otherwise).
        prompt: prompt each episode with the end of the task's best demonstration, from DATA, or
            from the prompts the checkpoint carries (`gato export`) when no DATA is given.
        prompt_match: prompt each episode with the best demonstration of DATA that carries the same
            text as its first observation (BabyAI: its mission), the task's best where none does; for
            models trained with `gato train --prompt-match True` (docs/quality.md). Needs DATA.
        workers: parallel processes, each scoring whole tasks with its own copy of the model and
            an equal share of the CPU threads (same scores as one process).
        force: evaluate again the tasks OUT holds results for under other settings (another
            checkpoint, episode count, seed, ...), replacing them; without it that is an error.
        progress: show a progress bar with a time estimate per task (over its episodes) and per
            vision-language set (over its examples).
        discrete_temperature: sampling temperature of discrete action tokens: 1 samples them as the
            paper does (continuous ones stay greedy), 0 is greedy, None follows TEMPERATURE.
    """
    from gato.envs import resolve
    from gato.envs.scores import scores_file_id

    if episodes < 1 or envs < 0 or videos < 0 or vl_examples < 0 or workers < 1:
        raise ValueError(f"episodes and workers must be >= 1, envs, videos and vl_examples >= 0; got {episodes}, "
                         f"{workers}, {envs}, {videos} and {vl_examples}")
    envs = envs or min(episodes, MAX_ENVS)
    if data is not None and not Path(data).is_dir():
        raise ValueError(f"--data {data} is not a folder (a dataset root made by `gato collect`)")
    check_temperatures(temperature, discrete_temperature)
    if prompt_match and (data is None or not prompt):
        raise ValueError("--prompt-match chooses each episode's prompt from a dataset root: give --data, "
                         "and do not pass --no-prompt")
    device = str(resolve_device(device))
    out = Path(out)
    folder = checkpoint_folder(Path(checkpoint))  # fixed now: a run that saves newer ones meanwhile is not mixed in
    model, meta, text = load_checkpoint(folder, device)
    prompts = prompt_source(checkpoint, data) if prompt else None
    if prompt and prompts is None:
        print(f"no demonstration prompts: no --data, and {folder} carries none, so every task is played "
              f"unprompted (give --data DATA to prompt with its training episodes)")
    settings = EvalSettings(weights_sha256(folder), episodes, envs, seed, temperature, resolve_decode(decode, meta),
                            None if prompts is None else str(prompts), discrete_temperature=discrete_temperature,
                            prompt_match=True if prompt_match else None)
    if tasks is None:
        tasks = () if suite else ("control",)
    names = with_suite(tuple(tasks), suite)
    chosen = resolve(list(names)) if names else []
    if vl and data is not None:
        from gato.evaluation.vision_language import check_sets

        check_sets(Path(data))  # a set with nothing to score fails now, not after the rollouts
    t0 = time.perf_counter()
    with folder_lock(out, "gato eval"):  # a folder that cannot be made or written fails before any rollout
        if not force:
            check_results_file(out, settings)
        per_task = _score_tasks(model, text, folder, chosen, settings, out, device, workers, force, progress)
        results = aggregate(per_task)
        phases = {f"{k}_s": sum(p.get(f"{k}_s", 0.0) for p in per_task.values()) for k in ("act", "env")}
        results["videos"] = {}
        t1 = time.perf_counter()
        for task in chosen[:videos]:
            v = record_video(model, text, task, out / "videos", seed=seed, data=prompts, temperature=temperature,
                             device=device, decode=settings.decode, discrete_temperature=discrete_temperature)
            results["videos"][task.name] = str(Path(v["video"]).relative_to(out))
        t2 = time.perf_counter()
        results["vision_language"] = _vision_language(model, text, data, vl_examples, seed, progress) if vl and data else {}
        phases |= {"videos_s": t2 - t1, "vision_language_s": time.perf_counter() - t2}
        results["phases"] = {k: round(v, 1) for k, v in phases.items()}
        print("time: " + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.0f} s" for k, v in results["phases"].items())
              + (f" (act and env: summed over the tasks of {workers} worker processes)" if workers > 1 else ""))
        results["learning_curve"] = load_curve(checkpoint)
        results.update(version=RESULTS_VERSION, checkpoint=str(checkpoint), step=meta.get("step"),
                       episodes=episodes, temperature=temperature, discrete_temperature=discrete_temperature,
                       seconds=round(time.perf_counter() - t0, 1),
                       seed=seed, envs=envs, decode=settings.decode, suite=suite,
                       prompts=settings.prompts, prompt_match=settings.prompt_match,
                       data=None if data is None else str(data), vl_examples=vl_examples,
                       scores_file=scores_file_id(), weights_sha256=settings.weights_sha256, workers=workers)
        write_json(out / "results.json", results)  # strict: a NaN score is an error, not invalid JSON
        for d, s in results["domains"].items():
            print(f"{d:<12} {s['tasks']:>3} tasks  mean {100 * s['mean']:.1f}%  IQM {100 * s['iqm']:.1f}%  "
                  f"above 50%: {s['above_50']}")
        from gato.evaluation.report import write_report

        report = write_report(results, out)
    print(f"results in {out / 'results.json'}, report in {report} and {report.with_suffix('.html')}")
    return results


def _score_tasks(model, text, folder: Path, chosen: list, settings: EvalSettings, out: Path, device: str,
                 workers: int, force: bool, progress: bool) -> dict:
    """Per-task results in the order of `chosen`: saved ones reused, the others scored here or in
    worker processes (most expensive first), each saved as it finishes."""
    import torch

    from gato.envs.scores import load_scores

    done, todo = {}, []
    for task in chosen:
        saved = None if force else saved_result(out, task.name, settings)
        if saved is not None:
            done[task.name] = saved
            _print_task(task.name, saved, " (saved earlier)")
        else:
            todo.append(task)
    if workers == 1 or len(todo) <= 1:
        ref = load_scores()
        for task in todo:
            r = score_task(model, text, task, settings, device=device, progress=progress, ref=ref)
            done[task.name] = save_result(out, task.name, settings, r)
            _print_task(task.name, r)
    else:
        threads = max(1, torch.get_num_threads() // workers)
        jobs = [TaskJob(str(folder), t.name, settings, str(out), device, threads) for t in cost_order(todo)]
        for name, r in parallel_map(run_job, jobs, min(workers, len(jobs)), start="spawn"):
            done[name] = r
            _print_task(name, r)
    return {t.name: done[t.name] for t in chosen}


def _print_task(name: str, p: dict, note: str = "") -> None:
    norm = "missing" if p["normalized"] is None else f"{100 * p['normalized']:.1f}%"
    print(f"{name:<40} return {p['mean']:>10.2f} ± {p['std']:<8.2f} normalised {norm}{note}")


def _vision_language(model, text, data: Path, examples: int, seed: int, progress: bool) -> dict:
    from gato.data.vl.sets import find_sets
    from gato.evaluation.vision_language import evaluate_vl

    if not find_sets(data):
        return {}
    out = evaluate_vl(model, text, data, max_examples=examples, seed=seed, progress=progress)
    for name, r in out.items():
        if r["kind"] == "text":
            print(f"{name:<40} perplexity {r['perplexity']:.1f} ({r['tokens']} tokens)")
        elif r["kind"] == "captions":
            print(f"{name:<40} BLEU-4 {r['bleu4']:.3f} (chance {r['chance_bleu4']:.3f})  "
                  f"CIDEr {r['cider']:.3f} (chance {r['chance_cider']:.3f})")
        else:
            for split, v in r["splits"].items():
                print(f"{name + ' ' + split:<40} VQA accuracy {100 * v['accuracy']:.1f}% "
                      f"(prior {100 * v['prior_accuracy']:.1f}%)")
    return out


def play(checkpoint: Positional[Path], task: Positional[str], out: Path = Path("runs/play"), seed: int = 100_000,
         data: Path | None = None, temperature: float = 0.0, max_frames: int = 400, device: str = "auto",
         decode: Literal["auto", "argmax", "median"] = "auto", prompt: bool = True,
         discrete_temperature: float | None = DISCRETE_TEMPERATURE) -> dict:
    """Run one episode of TASK with a checkpoint and save its video (GIF) for a quick look.

    Args:
        checkpoint: checkpoint folder or run folder.
        task: task name (see `gato tasks`).
        out: folder for the GIF.
        seed: reset seed (default: that of `gato eval`'s first episode, apart from collection seeds).
        data: dataset root for the prompt (default: the prompts the checkpoint carries).
        temperature: 0 for greedy continuous action tokens (as `gato eval`).
        max_frames: frames kept in the GIF (evenly subsampled).
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
        decode: greedy continuous action tokens: argmax, median, or auto (as `gato eval`).
        prompt: prompt with the end of the task's best demonstration, from DATA or else from the
            checkpoint's own prompts (as `gato eval`).
        discrete_temperature: sampling temperature of discrete action tokens (as `gato eval`).
    """
    from gato.envs import get_task

    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    check_temperatures(temperature, discrete_temperature)
    if data is not None and not Path(data).is_dir():
        raise ValueError(f"--data {data} is not a folder (a dataset root made by `gato collect`)")
    device = str(resolve_device(device))
    model, meta, text = load_checkpoint(checkpoint, device)
    prompts = prompt_source(checkpoint, data) if prompt else None
    result = record_video(model, text, get_task(task), Path(out), seed=seed, data=prompts, temperature=temperature,
                          max_frames=max_frames, device=device, decode=resolve_decode(decode, meta),
                          discrete_temperature=discrete_temperature)
    print(f"{task}: return {result['return']:.2f} in {result['steps']} steps; video {result['video']}")
    return result


def compare(a: Positional[Path], b: Positional[Path], out: Path | None = None, force: bool = False,
            json: bool = False) -> dict:
    """Compare two evaluations (`gato eval` outputs) task by task: did B play better than A?

    Paired episode by episode when both used the same --seed (every checkpoint then starts from
    the same states), with a 95% bootstrap interval of each task's difference; a task is called
    up or down only when its interval excludes 0. Either side may be an evaluation still running.

    Args:
        a: the reference: an eval folder (results.json, or the tasks/ saved so far) or a results.json.
        b: the evaluation compared with it.
        out: also write the table (markdown) here, and the numbers as JSON beside it (.json).
        force: replace OUT if it exists (otherwise an error).
        json: print the numbers as JSON instead of the table.
    """
    import json as json_lib

    from gato.evaluation.compare import compare_tasks, comparison_table, load_evaluation
    from gato.io import write_text

    if out is not None and not force and (Path(out).exists() or Path(out).with_suffix(".json").exists()):
        raise ValueError(f"--out {out} exists; pass --force to replace it")
    result = compare_tasks(load_evaluation(a), load_evaluation(b))
    table = comparison_table(result, (str(a), str(b)))
    result |= {"a": str(a), "b": str(b)}
    if out is not None:
        write_text(out, table)
        write_json(Path(out).with_suffix(".json"), result)
    print(json_lib.dumps(result, indent=1) if json else table)
    return result
