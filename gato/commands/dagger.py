"""`gato dagger`: rounds of expert-labelled learner rollouts and continued training (gato/dagger.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from gato.dagger import check_labelable, collect_round
from gato.device import resolve_device
from gato.envs.registry import task_spec
from gato.evaluation.evaluate import DISCRETE_TEMPERATURE, check_temperatures, resolve_decode
from gato.io import folder_lock, read_json, write_json
from gato.prompts import matched_prompts, task_prompt
from gato.training import checkpoint as ckpt
from gato.training.config import TrainConfig, parse_task_weights
from gato.training.loading import checkpoint_folder, load_model, load_tokenizer
from gato.training.merging import merge_checkpoints
from gato.training.trainer import run_training


def dagger(checkpoint: Positional[Path], tasks: tuple[str, ...] = (), rounds: int = 2, episodes: int = 16,
           steps: int = 300, data: Path | None = None, out: Path = Path("runs/dagger"), envs: int = 8,
           lr: float | None = None, beta: float = 0.0, decode: Literal["auto", "argmax", "median"] = "auto",
           device: str = "auto", max_minutes: float | None = None, progress: bool = True,
           discrete_temperature: float | None = DISCRETE_TEMPERATURE, first_round: int = 1, keep: float = 0.0,
           task_weights: tuple[str, ...] | None = None,
           loss_weighting: Literal["token", "row"] | None = None, prompt_match: bool | None = None) -> dict:
    """DAgger with the in-repo experts: roll out the checkpoint, label every visited state with the
    task's expert, add those episodes to the dataset (split `dagger`), train on the aggregate; repeat.

    Round r starts from round r-1's newest checkpoint (the first round from CHECKPOINT) and trains
    STEPS more steps into OUT/round-r with the checkpoint's own training configuration. Killed, it
    resumes: rollouts skip the episodes on disk, training resumes from its newest checkpoint.

    Args:
        checkpoint: the policy to start from (checkpoint or run folder).
        tasks: tasks to roll out (default: those the checkpoint was trained on, or all of DATA).
        rounds: the last round: rounds FIRST_ROUND..ROUNDS run (a re-run with a larger ROUNDS
            continues).
        episodes: learner episodes per task and round.
        steps: training steps per round.
        data: dataset root the checkpoint was trained on (default: the one in its config); DAgger
            episodes are added to it.
        out: folder of the rounds' training runs and dagger.json (per-round learner returns).
        envs: environments stepped together per task.
        lr: peak learning rate of the rounds (default: the checkpoint's).
        beta: the expert's share of executed actions: round r executes the expert's action
            instead of the learner's with probability BETA**r at each step (Ross et al.'s
            decaying mixture; the demonstrations are round 0). 0: the learner alone.
        decode: greedy continuous action tokens (as `gato eval`).
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
        max_minutes: stop training (with a checkpoint) after this many minutes per round.
        progress: show a progress bar while training.
        discrete_temperature: sample the learner's discrete action tokens at this temperature,
            as `gato eval` does, so its rollouts visit the states evaluation does (0: greedy).
        first_round: the number of the first round, to continue from another checkpoint and the
            aggregate that earlier rounds (another OUT) wrote into DATA: a round's reset seeds,
            shards and expert share follow its number, so round 1 again would find round 1's
            episodes on disk and collect nothing new.
        keep: the share of each round's starting weights kept in its policy: after training, the
            next round (and the result) starts from (1 - KEEP) * trained + KEEP * start, written
            to OUT/round-r-merged (`gato merge`; WiSE-FT). It keeps what the start could do that a
            round's training forgets (quality.md, rounds 9 and 10). 0: the trained checkpoint.
        task_weights: TASK=FACTOR entries that multiply a task's share of the rounds' training
            rows, to train the tasks that lag more (default: the checkpoint's own, for the tasks
            the rounds train on).
        loss_weighting: token or row: how the rounds' loss averages its targets (default: the
            checkpoint's own; `gato train --loss-weighting`).
        prompt_match: prompts from episodes with the same mission, in the rollouts and in the
            rounds' training (default: the checkpoint's own; `gato train --prompt-match True`).
    """
    from gato.data.datasets import find_tasks
    from gato.envs import resolve

    if rounds < 1 or episodes < 1 or steps < 1:
        raise ValueError(f"rounds, episodes and steps must be >= 1, got {rounds}, {episodes} and {steps}")
    if not 1 <= first_round <= rounds:
        raise ValueError(f"--first-round must be in [1, --rounds] = [1, {rounds}], got {first_round}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"--beta must be in [0, 1) (1 would execute only the expert), got {beta}")
    if not 0.0 <= keep < 1.0:
        raise ValueError(f"--keep must be in [0, 1) (1 would discard every round's training), got {keep}")
    check_temperatures(0.0, discrete_temperature)
    device = str(resolve_device(device))
    start = checkpoint_folder(Path(checkpoint))
    meta = ckpt.load_meta(start)
    base = TrainConfig.from_dict(meta["train"])
    root = Path(data) if data is not None else Path(base.data)
    if not root.is_dir():
        raise ValueError(f"dataset root {root} does not exist: pass --data (the folder the checkpoint was "
                         "trained on, made by `gato collect`)")
    names = list(tasks) or list(base.tasks) or find_tasks(root)
    chosen = resolve(names)
    check_labelable(chosen)  # before any rollout
    on_disk = set(find_tasks(root))
    missing = [t.name for t in chosen if t.name not in on_disk]
    if missing:
        raise ValueError(f"no demonstrations of {', '.join(missing)} under {root} (collect them first)")
    trained = {t.name for t in chosen} if base.tasks else on_disk  # the rounds' mixture (below)
    if task_weights is not None:  # given: checked here, before any rollout
        unknown = sorted(set(parse_task_weights(tuple(task_weights))) - trained)
        if unknown:
            raise ValueError(f"--task-weights name {', '.join(unknown)}, which the rounds do not train on")
        base = dataclasses.replace(base, task_weights=tuple(task_weights))
    else:  # the checkpoint's own, for the tasks these rounds still train on
        own = parse_task_weights(base.task_weights)  # in entry order, one per entry
        base = dataclasses.replace(base, task_weights=tuple(e for e, t in zip(base.task_weights, own) if t in trained))
    if loss_weighting is not None:
        base = dataclasses.replace(base, loss_weighting=loss_weighting)
    if prompt_match is not None:
        base = dataclasses.replace(base, prompt_match=prompt_match)
    out = Path(out)
    with folder_lock(out, "gato dagger"):
        return _rounds(start, base, root, chosen, range(first_round, rounds + 1), episodes, steps, out, envs, lr,
                       beta, decode, device, max_minutes, progress, discrete_temperature, keep)


def _rounds(start, base, root, chosen, rounds, episodes, steps, out, envs, lr, beta, decode, device, max_minutes,
            progress, discrete_temperature, keep) -> dict:
    log_path = out / "dagger.json"
    log = read_json(log_path, "DAgger log") if log_path.exists() else {"checkpoint": str(start), "rounds": {}}
    first = log.get("first_round", 1) if log["rounds"] else rounds[0]  # older logs started at round 1
    log["first_round"] = first
    if first != rounds[0]:
        raise ValueError(f"{out} holds DAgger rounds that start at round {first}, not {rounds[0]}: pass "
                         f"--first-round {first}, or another --out")
    policy = start
    for r in rounds:
        run_dir = out / f"round-{r}"
        latest = ckpt.latest_checkpoint(run_dir) if run_dir.exists() else None
        if latest is not None and ckpt.load_meta(latest)["step"] >= steps:
            policy = _kept(policy, latest, keep, out / f"round-{r}-merged")
            continue
        model, pmeta = load_model(policy, device)
        text = load_tokenizer(policy)
        how = resolve_decode(decode, pmeta)
        share = beta ** r if beta else 0.0  # the expert's share of this round's executed actions
        with folder_lock(root, "gato dagger (collecting a round)"):
            rows = _collect(model, text, chosen, root, r, episodes, envs, how, device, share, discrete_temperature,
                            base.prompt_match)
        log["rounds"][str(r)] = {"policy": str(policy), "beta": share, "discrete_temperature": discrete_temperature,
                                 "tasks": rows}
        write_json(log_path, log)
        cfg = dataclasses.replace(base, init=str(policy), steps=steps, warmup=min(base.warmup, steps // 10),
                                  data=str(root), tasks=tuple(t.name for t in chosen) if base.tasks else (),
                                  lr=lr if lr is not None else base.lr,
                                  checkpoint_every=min(base.checkpoint_every, steps))
        run_training(cfg, run_dir, device=device, resume=latest is not None, progress=progress,
                     max_minutes=max_minutes)
        policy = _kept(policy, ckpt.latest_checkpoint(run_dir), keep, out / f"round-{r}-merged")
    log["final"] = str(policy)
    write_json(log_path, log)
    print(f"DAgger done: {policy}")
    return log


def _kept(start: Path, trained: Path, keep: float, merged: Path) -> Path:
    """The round's policy: TRAINED itself, or its merge with START, reused on a re-run while
    TRAINED is the same checkpoint (a round stopped by --max-minutes and resumed merges again)."""
    if not keep:
        return trained
    done = ckpt.load_meta(merged).get("merged", {}) if ckpt.is_checkpoint(merged) else {}
    parents = done.get("parents") or [{}, {}]
    if parents[1].get("weights_sha256") != ckpt.weights_sha256(trained):
        merge_checkpoints(start, trained, merged, 1.0 - keep)
    return merged


def _collect(model, text, chosen, root, r, episodes, envs, how, device, beta, discrete_temperature,
             match: bool) -> list[dict]:
    """One round's rollouts of every task, labelled and written under ROOT."""
    from gato.envs.scores import load_scores
    from gato.evaluation.metrics import normalized, reference_means

    rows, ref = [], load_scores()
    for task in chosen:
        spec = task_spec(task.name)
        prompt = (match and matched_prompts(root, task.name, spec, model.cfg, text)) or \
            task_prompt(root, task.name, spec, model.cfg, text)
        row = collect_round(model, text, task, root, r, episodes, num_envs=envs, prompt=prompt, decode=how,
                            device=device, beta=beta, discrete_temperature=discrete_temperature)
        got = row["learner_return"]
        # the rollouts' score (the learner's own where beta is 0), as `gato eval` normalises it
        row["learner_normalized"] = None if got is None else normalized(got, *reference_means(ref, task.name))
        rows.append(row)
        ret = "-" if got is None else f"{got:.2f}"
        norm = "" if row["learner_normalized"] is None else f" ({100 * row['learner_normalized']:.1f}% of expert)"
        who = "learner" if not beta else f"mixed ({beta:.2f} expert)"
        print(f"round {r} {task.name:<36} {who} return {ret:>10}{norm}  +{row['new_episodes']} labelled "
              f"episodes ({row['on_disk']} in all)")
    return rows
