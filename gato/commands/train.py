"""`gato train` and `gato export`: the training command over gato.training, and a checkpoint
made for sharing (weights, config, tokenizer, demonstration prompts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from gato.config import ModelConfig
from gato.training import checkpoint as ckpt
from gato.training.config import EXECUTION_FIELDS, TOKENIZER_FILE, TRAIN_PRESETS, TrainConfig
from gato.training.trainer import run_training
from gato.training.loading import check_output_folder, checkpoint_folder, load_tokenizer


def train(out: Path = Path("runs/gato-tiny"), recipe: str = "tiny", preset: str | None = None,
          steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
          context: int | None = None, seed: int | None = None, data: str | None = None,
          warmup: int | None = None, log_every: int | None = None, checkpoint_every: int | None = None,
          tokenizer: str | None = None, tasks: tuple[str, ...] | None = None, suite: str | None = None,
          vl_sets: tuple[str, ...] | None = None, vl_weight: float | None = None,
          grad_accum: int | None = None, parallel: Literal["auto", "ddp", "fsdp"] | None = None,
          activation_checkpointing: Literal["auto", "on", "off"] | None = None, compile: bool | None = None,
          loader_workers: int | None = None, precision: Literal["auto", "bf16", "fp32"] | None = None,
          init: str | None = None, observation_order: Literal["modality", "key"] | None = None,
          start_prob: float | None = None, task_balance: float | None = None,
          task_weights: tuple[str, ...] | None = None,
          target_sigma: float | None = None, loss_weighting: Literal["token", "row"] | None = None,
          min_return: float | None = None, prompt_prob: float | None = None, prompt_match: bool | None = None,
          weight_decay: float | None = None, keep_checkpoints: int | None = None, max_episodes: int | None = None,
          final_lr_ratio: float | None = None, betas: tuple[float, float] | None = None, eps: float | None = None,
          grad_clip: float | None = None, prompt_tokens: int | None = None,
          eval_every: int = 0, eval_tasks: tuple[str, ...] = (),
          eval_episodes: int = 4, resume: bool = False, allow_data_change: bool = False, device: str = "auto",
          max_minutes: float | None = None, timeout_s: float = 600.0, progress: bool = True) -> dict:
    """Train a Gato model; checkpoints and TensorBoard logs go to OUT.

    Options shown with "default: None" take the recipe's value (gato/training/config.py,
    TRAIN_PRESETS); `gato mixture` and the run's config.json show what was resolved.

    On several processes, launch it with torchrun (`torchrun --nproc_per_node=8 -m gato train ...`):
    each rank trains on its share of every global batch; OUT must be on a filesystem every node sees.

    Args:
        out: run folder (config.json, step_XXXXXXXX/ checkpoints, tb/ logs).
        recipe: training preset: tiny (minutes on CPU), gato-tiny (the shipped model's) or paper
            (the paper's schedule); gato/training/config.py lists them all.
        preset: model preset (`gato presets`: gato-tiny, gato-tiny-deep, gato-79m, ...); default: the recipe's.
        steps: total optimizer steps.
        batch_size: sequences per step, over all ranks (the global batch).
        lr: peak learning rate.
        context: tokens per sequence (default: the model's context).
        seed: seed of weights and data order.
        data: "synthetic" (generated toy tasks, text and captions) or a dataset folder from `gato collect`.
        tasks: tasks of the dataset folder to train on (default: all).
        suite: train on this named suite's tasks (quick, demo, core, heldout; gato/suites.py), added to TASKS.
        vl_sets: vision-language and text sets of the dataset folder (default: all; `gato collect vl text`).
        vl_weight: share of each batch drawn from those sets (paper: about 0.15).
        warmup: linear warm-up steps.
        log_every: steps between log lines (progress bar, TensorBoard).
        checkpoint_every: steps between checkpoints.
        tokenizer: SentencePiece model file (default: the committed one; see `gato tokenizer train`).
        grad_accum: micro-batches per step on each rank (same global batch, less memory).
        parallel: with several ranks: ddp, fsdp (FSDP2), or auto (fsdp for gato-364m and gato-1.18b).
        activation_checkpointing: recompute block activations in the backward: on, off, or auto (large presets).
        compile: torch.compile each transformer block.
        loader_workers: data loader processes building the next batches (0: in the training process).
        precision: bf16 (autocast), fp32, or auto: bf16 on CUDA and on CPUs with bf16 matrix units
            (AMX / AVX-512 BF16), fp32 elsewhere. May change on resume.
        init: start from this checkpoint's weights (same model shape and tokenizer, or fewer layers
            of the same width: they grow into the preset, docs/design.md); the optimizer and
            schedule start fresh.
        observation_order: a Dict observation's token order: modality (the paper's text, images,
            tensors; BabyAI's mission before its grid) or key (by key alone, how checkpoints saved
            before the option were trained). Default: --init's order, else modality.
        start_prob: share of control windows that open at an episode's start, as acting does.
        task_balance: 0: every task the same rows; 1: the same action tokens (docs/quality.md).
        task_weights: TASK=FACTOR entries that multiply a task's share of the control rows
            (more rows for a task that lags; docs/quality.md).
        target_sigma: > 0: continuous action targets are Gaussian histograms this many bins wide.
        loss_weighting: token (the paper: the loss is a mean over target tokens, so text rows
            dominate it) or row (every row weighs the same, so each task's share of the gradient
            is its share of rows; docs/quality.md).
        min_return: keep demonstrations at least this far from the random to the expert return
            (0.8: the paper's 80% rule; 0 keeps episodes no worse than random).
        prompt_prob: share of control windows prepended with a demonstration prompt.
        prompt_match: prompts come from an episode with the same text observation (BabyAI: the same
            mission) where one exists, as `gato eval --prompt-match` prompts.
        weight_decay: AdamW weight decay of the matrices.
        keep_checkpoints: newest checkpoints kept in OUT (older ones are deleted as training goes).
        max_episodes: at most this many training episodes per task (few-shot); 0: all.
        final_lr_ratio: the cosine schedule ends at this fraction of the peak learning rate.
        betas: AdamW's (beta1, beta2).
        eps: AdamW's epsilon.
        grad_clip: clip the global gradient norm to this.
        prompt_tokens: tokens of a demonstration prompt (0: a quarter of the context).
        eval_every: every this many steps (at a checkpoint), evaluate EVAL_TASKS and add a point to
            OUT/curve.json (normalised score against tokens); 0: never.
        eval_tasks: the learning curve's fixed task subset (default: the training tasks, up to 8).
        eval_episodes: episodes per task per point.
        resume: continue exactly from the newest checkpoint in OUT (on any number of ranks), with its
            saved configuration; only execution settings (steps, logging, checkpointing, loader_workers,
            parallelism, precision) may be given again.
        allow_data_change: resume even though the training data changed since the run started.
        device: auto, cpu or cuda.
        max_minutes: stop (with a checkpoint) after this many minutes (0: after the first step).
        timeout_s: seconds a rank waits for the others in a collective before failing.
        progress: show a progress bar.
    """
    if suite is not None:
        from gato.suites import with_suite

        tasks = with_suite(tuple(tasks or ()), suite)
    if recipe not in TRAIN_PRESETS:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(TRAIN_PRESETS)}")
    given = locals()
    overrides = {f.name: given[f.name] for f in dataclasses.fields(TrainConfig) if given[f.name] is not None}
    cfg = _resumed_config(Path(out), overrides) if resume else None
    cfg = cfg or dataclasses.replace(TRAIN_PRESETS[recipe], **overrides)
    on_save = None
    if eval_every:
        if eval_every % cfg.checkpoint_every:
            raise ValueError(f"eval_every ({eval_every}) must be a multiple of checkpoint_every ({cfg.checkpoint_every})")
        on_save = _learning_curve(cfg, eval_every, eval_tasks, eval_episodes)
    return run_training(cfg, Path(out), device=device, resume=resume, progress=progress, max_minutes=max_minutes,
                        timeout_s=timeout_s, on_save=on_save, allow_data_change=allow_data_change)


def _resumed_config(out: Path, overrides: dict) -> TrainConfig | None:
    """--resume continues the run's saved configuration: flags that change execution only (steps,
    logging, checkpointing, parallelism, precision) may be given; any other flag must agree."""
    latest = ckpt.latest_checkpoint(out) if out.exists() else None
    if latest is None:
        return None
    saved = TrainConfig.from_dict(ckpt.load_meta(latest)["train"])
    differ = {k: v for k, v in overrides.items() if k not in EXECUTION_FIELDS and v != getattr(saved, k)}
    if differ:
        raise ValueError(f"{latest}: --resume continues the saved configuration; these flags differ from it: "
                         + ", ".join(f"{k}={v!r} (saved {getattr(saved, k)!r})" for k, v in differ.items())
                         + f". Only execution settings may change: {', '.join(EXECUTION_FIELDS)}")
    return dataclasses.replace(saved, **{k: v for k, v in overrides.items() if k in EXECUTION_FIELDS})


def _learning_curve(cfg, every: int, tasks: tuple[str, ...], episodes: int):
    """The checkpoint callback that adds learning-curve points (gato/evaluation/curve.py)."""
    from gato.data.datasets import find_tasks
    from gato.evaluation.curve import append_point, curve_point

    if cfg.data == "synthetic":
        raise ValueError("--eval-every needs control tasks: train on a dataset folder (--data)")
    names = tasks or cfg.tasks or tuple(find_tasks(Path(cfg.data))[:8])
    decode = "median" if cfg.target_sigma > 0 else "argmax"

    def on_save(trainer, run_dir: Path) -> None:
        if trainer.step % every and trainer.step != trainer.cfg.steps:
            return
        point = curve_point(trainer.model, trainer.text, names, episodes, Path(cfg.data), decode=decode,
                            device=str(trainer.device))
        tokens = trainer.step * cfg.batch_size * trainer.context
        append_point(run_dir, {"step": trainer.step, "tokens": tokens} | point)
        print(f"step {trainer.step}: learning curve mean {100 * (point['mean'] or 0):.1f}% of expert, "
              f"{point['above_50']} of {len(names)} tasks at or above 50%", flush=True)
    return on_save


def mixture(data: Positional[Path], recipe: str = "gato-tiny", preset: str | None = None,
            tasks: tuple[str, ...] = (), suite: str | None = None, task_balance: float | None = None,
            task_weights: tuple[str, ...] = (), vl_weight: float | None = None, context: int | None = None,
            min_return: float | None = None, rows: int = 2000) -> list[dict]:
    """Print where a training mixture's rows and loss go: per task and vision-language set, its
    share of rows and of loss targets. A loss averaged over targets (`--loss-weighting token`, the
    paper) gives each its target share of the gradient, so a task of 150-token timesteps with one
    action (BabyAI) can hold half the rows and 3% of the gradient (docs/quality.md).

    Args:
        data: dataset root (made by `gato collect`).
        recipe: training preset whose mixture settings apply (start_prob, task_balance, ...).
        preset: model preset (its token map and context); default: the recipe's.
        tasks: tasks of DATA to include (default: all).
        suite: include this named suite's tasks.
        task_balance: as `gato train --task-balance`.
        task_weights: as `gato train --task-weights` (TASK=FACTOR).
        vl_weight: as `gato train --vl-weight`.
        context: tokens per row (default: the recipe's).
        min_return: as `gato train --min-return`.
        rows: rows to draw (the shares are their counts).
    """
    from gato.config import get_preset
    from gato.tokenization.text import TextTokenizer
    from gato.training.config import build_mixture

    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if suite is not None:
        from gato.suites import with_suite

        tasks = with_suite(tuple(tasks), suite)
    if recipe not in TRAIN_PRESETS:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(TRAIN_PRESETS)}")
    given = {"tasks": tuple(tasks), "task_weights": tuple(task_weights), "task_balance": task_balance,
             "vl_weight": vl_weight, "context": context, "min_return": min_return, "data": str(data)}
    cfg = dataclasses.replace(TRAIN_PRESETS[recipe], **{k: v for k, v in given.items() if v is not None})
    model_cfg = get_preset(preset or cfg.preset)
    length = cfg.context or model_cfg.context
    mix = build_mixture(cfg, model_cfg, TextTokenizer.default(), length)
    out = sorted(mix.shares(rows, length, cfg.batch_size), key=lambda r: -r["targets"])
    print(f"{'source':<36} {'rows':>7} {'targets/row':>12} {'loss (token)':>13}")
    for r in out:
        tpr = "-" if r["targets_per_row"] is None else f"{r['targets_per_row']:.1f}"
        print(f"{r['source']:<36} {r['rows']:>7.1%} {tpr:>12} {r['targets']:>13.1%}")
    return out


def export(checkpoint: Positional[Path], out: Path, data: Path | None = None, force: bool = False,
           results: Path | None = None) -> Path:
    """Write a checkpoint for sharing: its weights, config and tokenizer, without the optimizer and
    data state that only resuming needs (a third of the size), and demonstration prompts for its
    tasks (a few KB), so `gato eval` and `gato play` prompt it as the paper does with no dataset.
    `gato eval`, `play`, `chat` and `caption` take the result like any checkpoint.

    Args:
        checkpoint: checkpoint folder, or a run folder (its newest checkpoint).
        out: the folder to write (replaced atomically if it exists).
        data: dataset root to take the prompts from (default: the one it was trained on, if present).
        force: replace OUT when it is an earlier export (anything else there is never replaced).
        results: a results.json of `gato eval` whose scores go into the model card (README.md).
    """
    import tempfile

    from gato.prompts import PROMPTS_DIR, write_prompts

    src = checkpoint_folder(checkpoint)
    meta, text = ckpt.load_meta(src), load_tokenizer(src)
    out = Path(out)
    check_output_folder(out, [src], force, "exported")
    files = {TOKENIZER_FILE: text.to_bytes()}
    data = Path(data) if data is not None else Path(meta.get("train", {}).get("data", ""))
    prompted: list[str] = []
    if data.name and data.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            model_cfg = ModelConfig.from_dict(meta["model"])
            trained = meta.get("train", {}).get("context") or model_cfg.context
            model_cfg = dataclasses.replace(model_cfg, context=min(model_cfg.context, trained))
            prompted = write_prompts(data, Path(tmp), model_cfg, text, list(meta.get("train", {}).get("tasks") or []))
            files |= {f"{PROMPTS_DIR}/{f.relative_to(tmp)}": f.read_bytes()
                      for f in sorted(Path(tmp).rglob("*")) if f.is_file()}
    from gato.io import read_json
    from gato.model_card import model_card

    scores = read_json(results, "results file") if results is not None else None
    files["README.md"] = model_card(meta, prompted, scores).encode()
    path = ckpt.save_checkpoint(Path(out), weights=ckpt.load_weights(src), meta=meta, files=files)
    where = f"prompts for {len(prompted)} tasks from {data}" if prompted else "no prompts (no training data found)"
    print(f"exported {src} (step {meta.get('step')}) -> {path} with {where}")
    return path
