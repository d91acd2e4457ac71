"""`gato experiment finetune|prompts|scaling|mission`: the paper's few-shot fine-tuning comparison
(section 5.2, Figure 9), the value of demonstration prompts, and model size at equal tokens
(section 5.1, Figure 8), at our scale, resumable cell by cell."""

from __future__ import annotations

import time
from pathlib import Path

from tyro.conf import Positional

from gato.evaluation import experiments as ex
from gato.io import folder_lock, read_json
from gato.suites import HELDOUT, QUICK


def experiment_finetune(checkpoint: Positional[Path], tasks: tuple[str, ...] = HELDOUT[:2],
                        demos: tuple[int, ...] = (1, 10), steps: int = 100, batch_size: int = 8, lr: float = 1e-4,
                        eval_episodes: int = 20, noise: float = 0.0,
                        out: Path = Path("runs/experiments/finetune"), device: str = "auto",
                        progress: bool = True) -> dict:
    """Fine-tune CHECKPOINT on N demonstrations of each held-out task and train the same recipe
    from scratch, for each N in DEMOS; evaluate both (Figure 9). Writes OUT/results.md, a table
    and OUT/figure9.png; a killed run resumes from its finished cells.

    Args:
        checkpoint: the pretrained generalist (checkpoint or run folder).
        tasks: held-out tasks (default: the first two of the heldout suite, gato/suites.py); a task
            the checkpoint was trained on is refused.
        demos: numbers of demonstrations (the paper: 1 to 1000s; scale to the CPU).
        steps: fine-tuning steps of every cell (equal for pretrained and scratch).
        batch_size: sequences per step.
        lr: peak learning rate of both (the scratch baseline gets the same recipe).
        eval_episodes: evaluation episodes per cell.
        noise: collect noise-injected demonstrations (`gato collect --noise`).
        out: the experiment folder: data/, runs/<cell>/, cells/, results.md, figure9.png.
        device: auto, cpu, cuda or cuda:N.
        progress: show progress bars.
    """
    from gato.commands.data import collect
    from gato.commands.finetune import finetune

    if not tasks or not demos or min(demos) < 1 or steps < 1 or eval_episodes < 1:
        raise ValueError(f"need tasks, demos >= 1, steps >= 1 and eval_episodes >= 1; got {tasks}, {demos}, "
                         f"{steps}, {eval_episodes}")
    _refuse_seen(Path(checkpoint), tasks)
    out = Path(out)
    args = dict(checkpoint=str(checkpoint), tasks=list(tasks), demos=list(demos), steps=steps, batch_size=batch_size,
                lr=lr, eval_episodes=eval_episodes, noise=noise)
    with folder_lock(out, "gato experiment finetune"):
        ex.start(out, "gato experiment finetune", args)
        collect(tuple(tasks), episodes=max(demos), out=out / "data", noise=noise, progress=progress)
        cells = []
        for task in tasks:
            for n in demos:
                for scratch in (False, True):
                    keys = (task, n, "scratch" if scratch else "pretrained")
                    cell = ex.done(out, *keys)
                    if cell is None:
                        t0 = time.perf_counter()
                        r = finetune(checkpoint, task, episodes=n, steps=steps, out=out / "runs" / ex.cell_name(*keys),
                                     data=out / "data", lr=lr, batch_size=batch_size, scratch=scratch,
                                     eval_episodes=eval_episodes, device=device, progress=progress)
                        cell = ex.record(out, r | {"seconds": round(time.perf_counter() - t0, 1)}, *keys)
                    cells.append(cell)
        ex.finetune_plot(cells, out / "figure9.png")
        hours = sum(c["seconds"] for c in cells) / 3600
        ex.write_results(out, "Few-shot fine-tuning on held-out tasks (paper, section 5.2)", ex.finetune_table(cells),
                         f"{steps} steps of {batch_size} sequences per cell, {eval_episodes} evaluation episodes; "
                         f"{hours:.2f} CPU-hours of cells.\n\n![Figure 9](figure9.png)")
    print(ex.finetune_table(cells))
    return {"cells": cells, "folder": str(out)}


def experiment_prompts(checkpoint: Positional[Path], tasks: tuple[str, ...] = (), episodes: int = 10,
                       demos: int = 5, out: Path = Path("runs/experiments/prompts"), device: str = "auto",
                       progress: bool = True) -> dict:
    """Evaluate CHECKPOINT on each task with its own demonstration prompt, with none, and with
    another task's (the next task in TASKS), on tasks it was trained on and held-out ones.

    Args:
        checkpoint: the checkpoint (checkpoint or run folder).
        tasks: tasks to evaluate (default: four of the demo suite and the heldout suite's first two).
        episodes: evaluation episodes per task and prompt.
        demos: demonstrations collected per task to draw the prompts from (the best one is used).
        out: the experiment folder: data/, cells/, results.md, prompts.png.
        device: auto, cpu, cuda or cuda:N.
        progress: show progress bars.
    """
    from gato.commands.data import collect
    from gato.device import resolve_device
    from gato.envs import get_task
    from gato.envs.registry import task_spec
    from gato.envs.scores import load_scores
    from gato.evaluation.evaluate import resolve_decode, rollout
    from gato.evaluation.metrics import normalized, reference_means
    from gato.prompts import task_prompt
    from gato.training.loading import load_checkpoint

    tasks = tuple(tasks) or ("control/cartpole", "babyai/GoToRedBall", "dmc/cartpole-balance", "mujoco/reacher",
                             *HELDOUT[:2])
    if len(tasks) < 2 or episodes < 1 or demos < 1:
        raise ValueError(f"need two or more tasks, episodes >= 1 and demos >= 1; got {tasks}, {episodes}, {demos}")
    out, device = Path(out), str(resolve_device(device))
    seen = _trained_on(Path(checkpoint))
    with folder_lock(out, "gato experiment prompts"):
        ex.start(out, "gato experiment prompts", dict(checkpoint=str(checkpoint), tasks=list(tasks),
                                                      episodes=episodes, demos=demos))
        collect(tasks, episodes=demos, out=out / "data", progress=progress)
        model, meta, text = load_checkpoint(checkpoint, device)
        decode = resolve_decode("auto", meta)
        ref = load_scores()
        cells = []
        for i, name in enumerate(tasks):
            other = tasks[(i + 1) % len(tasks)]
            for kind, source in (("own", name), ("none", None), ("other", other)):
                cell = ex.done(out, name, kind)
                if cell is None:
                    prompt = None if source is None else task_prompt(out / "data", source, task_spec(source),
                                                                     model.cfg, text)
                    eps = rollout(model, get_task(name), task_spec(name), episodes, episodes, text=text, prompt=prompt,
                                  seed=100_000, device=device, decode=decode, progress=progress)
                    mean = sum(e["return"] for e in eps) / len(eps)
                    cell = ex.record(out, {"task": name, "prompt": kind, "prompt_task": source, "seen": name in seen,
                                           "mean": mean, "normalized": normalized(mean, *reference_means(ref, name))},
                                     name, kind)
                cells.append(cell)
        ex.prompts_plot(cells, out / "prompts.png")
        ex.write_results(out, "Demonstration prompts: own, none, another task's", ex.prompts_table(cells),
                         f"{episodes} episodes per task and prompt, greedy; prompts: the end of the best of {demos} "
                         "fresh expert demonstrations of the task (or of the next task in the list).\n\n"
                         "![prompts](prompts.png)")
    print(ex.prompts_table(cells))
    return {"cells": cells, "folder": str(out)}


def experiment_scaling(presets: tuple[str, ...] = ("gato-mini", "gato-tiny", "gato-small"), data: Path | None = None,
                       tasks: tuple[str, ...] = QUICK, steps: int = 400, batch_size: int = 8, context: int = 512,
                       lr: float = 1e-3, eval_every: int = 100, eval_tasks: tuple[str, ...] = (),
                       eval_episodes: int = 4, episodes: int = 20, out: Path = Path("runs/experiments/scaling"),
                       device: str = "auto", progress: bool = True) -> dict:
    """Train each model size on the same data, seed and token budget (steps x batch x context)
    with the shipped recipe, evaluating a fixed task subset every EVAL_EVERY steps; plot mean
    normalised score against tokens per size (Figure 8). Writes OUT/results.md and
    OUT/figure8.png; a killed run resumes (each size's run resumes from its checkpoint).

    Args:
        presets: model presets, smallest to largest (gato/config.py).
        data: a dataset root holding TASKS (default: collect EPISODES noise-injected demonstrations
            of each into OUT/data).
        tasks: training tasks (default: the quick suite of `make demo`).
        steps: optimizer steps of every size.
        batch_size: sequences per step.
        context: tokens per sequence.
        lr: peak learning rate of every size.
        eval_every: steps between learning-curve points.
        eval_tasks: tasks scored at each point (default: six of TASKS, one or more per domain).
        eval_episodes: episodes per task per point.
        episodes: demonstrations collected per task when DATA is not given.
        out: the experiment folder: data/, runs/<preset>/, cells/, results.md, figure8.png.
        device: auto, cpu, cuda or cuda:N.
        progress: show progress bars.
    """
    import torch

    from gato.commands.data import collect
    from gato.commands.train import train
    from gato.config import get_preset
    from gato.model import Gato

    if not presets or not tasks or min(steps, batch_size, context, eval_every, eval_episodes, episodes) < 1:
        raise ValueError("need presets and tasks, and steps, batch_size, context, eval_every, eval_episodes and "
                         "episodes >= 1")
    for p in presets:
        get_preset(p)  # an unknown name: an error before any work
    if data is not None and not Path(data).is_dir():
        raise ValueError(f"--data {data} is not a folder (a dataset root made by `gato collect`)")
    eval_tasks = tuple(eval_tasks) or tuple(t for t in tasks if t in _SCALING_EVAL) or tuple(tasks[:6])
    out = Path(out)
    args = dict(presets=list(presets), data=None if data is None else str(data), tasks=list(tasks), steps=steps,
                batch_size=batch_size, context=context, lr=lr, eval_every=eval_every, eval_tasks=list(eval_tasks),
                eval_episodes=eval_episodes, episodes=episodes)
    with folder_lock(out, "gato experiment scaling"):
        ex.start(out, "gato experiment scaling", args)
        root = Path(data) if data is not None else out / "data"
        if data is None:
            collect(tuple(tasks), episodes=episodes, out=root, noise="auto", progress=progress)
        cells = []
        for preset in presets:
            cell = ex.done(out, preset)
            if cell is None:
                t0 = time.perf_counter()
                run = out / "runs" / preset
                train(out=run, recipe="gato-tiny", preset=preset, data=str(root), tasks=tuple(tasks), steps=steps,
                      batch_size=batch_size, context=context, lr=lr, warmup=max(1, steps // 10),
                      checkpoint_every=eval_every, vl_weight=0.0, eval_every=eval_every, eval_tasks=eval_tasks,
                      eval_episodes=eval_episodes, resume=True, device=device, progress=progress)
                with torch.device("meta"):
                    params = Gato(get_preset(preset)).num_params()
                curve = read_json(run / "curve.json", "learning curve")
                cell = ex.record(out, {"preset": preset, "params": params, "tokens": steps * batch_size * context,
                                       "curve": curve, "seconds": round(time.perf_counter() - t0, 1)}, preset)
            # the run's loss log (its folder is part of the experiment's), for the table and plot
            cells.append(cell | {"steps": steps, "history": read_json(out / "runs" / preset / "history.json",
                                                                        "training history")})
        ex.scaling_plot(cells, out / "figure8.png")
        ex.write_results(out, "Scaling at small scale (paper, section 5.1, Figure 8)", ex.scaling_table(cells),
                         f"{steps} steps of {batch_size} x {context} tokens per size on {len(tasks)} tasks; mean "
                         f"expert-normalised score over {len(eval_tasks)} tasks ({', '.join(eval_tasks)}), "
                         f"{eval_episodes} episodes each, greedy.\n\n![Figure 8](figure8.png)")
    print(ex.scaling_table(cells))
    return {"cells": cells, "folder": str(out)}


# one or more per domain of the quick suite, short episodes first: the default learning-curve subset
_SCALING_EVAL = ("control/cartpole", "control/mountaincar-continuous", "babyai/GoToRedBallNoDists",
                 "mujoco/inverted-pendulum", "mujoco/reacher", "metaworld/reach")


def _trained_on(checkpoint: Path) -> set[str]:
    """The tasks a checkpoint was trained on, from the prompts it carries (empty if none)."""
    from gato.data.datasets import find_tasks
    from gato.prompts import checkpoint_prompts
    from gato.training.loading import checkpoint_folder

    folder = checkpoint_prompts(checkpoint_folder(checkpoint))
    return set(find_tasks(folder)) if folder else set()


def _refuse_seen(checkpoint: Path, tasks) -> None:
    seen = _trained_on(checkpoint) & set(tasks)
    if seen:
        raise ValueError(f"{checkpoint} was trained on {', '.join(sorted(seen))}: not held out")


def experiment_mission(checkpoint: Positional[Path], layouts: int = 40, first_seed: int = 10_000,
                       discrete_temperature: float = 1.0, out: Path = Path("runs/experiments/mission"),
                       device: str = "auto") -> dict:
    """Does CHECKPOINT read BabyAI's mission? Runs LAYOUTS PickupDist layouts to the first pickup,
    with the true mission and with a made-up one naming another object, and counts the first
    pickups that match against a uniform choice's chance (gato/evaluation/grounding.py).
    Writes OUT/results.md and the counts in OUT/cells/probe.json; a finished folder is reported,
    not rerun.

    Args:
        checkpoint: the checkpoint (checkpoint or run folder); prompted with its own prompts.
        layouts: PickupDist reset seeds probed (FIRST_SEED, FIRST_SEED + 1, ...).
        first_seed: the first reset seed (the default is outside every collected split).
        discrete_temperature: the policy's sampling temperature for discrete actions (0: greedy).
        out: the experiment folder.
        device: auto, cpu, cuda or cuda:N.
    """
    from gato.agent import GatoAgent
    from gato.device import resolve_device
    from gato.envs.registry import task_spec
    from gato.evaluation.grounding import LEVEL, mission_probe, probe_table
    from gato.prompts import checkpoint_prompts, task_prompt
    from gato.training.loading import checkpoint_folder, load_checkpoint

    if layouts < 1 or discrete_temperature < 0:
        raise ValueError(f"need layouts >= 1 and discrete_temperature >= 0, got {layouts} and {discrete_temperature}")
    out, device = Path(out), str(resolve_device(device))
    with folder_lock(out, "gato experiment mission"):
        ex.start(out, "gato experiment mission", dict(checkpoint=str(checkpoint), layouts=layouts,
                                                      first_seed=first_seed, discrete_temperature=discrete_temperature))
        result = ex.done(out, "probe")
        if result is None:
            model, _, text = load_checkpoint(checkpoint, device)
            spec = task_spec(LEVEL)
            prompt = task_prompt(checkpoint_prompts(checkpoint_folder(Path(checkpoint))), LEVEL, spec, model.cfg, text)

            def policy(env, seed: int):
                agent = GatoAgent(model, spec, 1, text=text, prompt=prompt, seed=seed, device=device,
                                  discrete_temperature=discrete_temperature)
                return lambda obs: agent.act([obs])[0]

            result = ex.record(out, mission_probe(policy, list(range(first_seed, first_seed + layouts))), "probe")
        ex.write_results(out, f"Does {checkpoint} read BabyAI's mission?", probe_table(result),
                         f"{LEVEL}, reset seeds {first_seed} to {first_seed + layouts - 1}, run to the first pickup; "
                         f"discrete actions sampled at temperature {discrete_temperature}.")
    print(probe_table(result))
    return result | {"folder": str(out)}
