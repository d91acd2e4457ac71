"""The training configuration: `TrainConfig` (a frozen dataclass saved with every run and
checkpoint), the named recipes, and the data mixture a configuration trains on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gato.config import ModelConfig, from_dict
from gato.data.sampling import Mixture
from gato.tokenization.text import TextTokenizer


def parse_task_weights(entries: tuple[str, ...]) -> dict[str, float]:
    """{task: factor} from "TASK=FACTOR" entries (factor finite and > 0, each task once)."""
    out: dict[str, float] = {}
    for e in entries:
        task, sep, value = e.rpartition("=")
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        if not sep or not task or not (np.isfinite(factor) and factor > 0) or task in out:
            raise ValueError(f"task_weights entry {e!r} must be TASK=FACTOR with a finite FACTOR > 0, "
                             "each task once (say babyai/PickupDist=3)")
        out[task] = factor
    return out


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "gato-tiny"
    steps: int = 1000
    batch_size: int = 8
    context: int = 0  # 0: the model's context
    lr: float = 1e-3  # peak learning rate
    warmup: int = 100
    final_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    seed: int = 0
    data: str = "synthetic"  # "synthetic" or a dataset folder written by `gato collect`
    tasks: tuple[str, ...] = ()  # tasks of the dataset folder to train on (empty: all)
    min_return: float = 0.8  # keep episodes this far from random to expert return (gato.data.storage.return_bar)
    max_episodes: int = 0  # at most this many training episodes per task (few-shot fine-tuning); 0: all
    prompt_prob: float = 0.25
    # Prompts from an episode with the same text (BabyAI: the same mission) where one exists, not
    # any episode of the task: copying the prompt's goal is then right (docs/quality.md).
    prompt_match: bool = False
    start_prob: float = 0.0  # share of control windows that open at an episode's start (as acting does)
    task_balance: float = 0.0  # 0: equal rows per task; 1: equal action tokens per task (docs/quality.md)
    task_weights: tuple[str, ...] = ()  # "TASK=FACTOR": multiply a lagging task's share of control rows
    target_sigma: float = 0.0  # > 0: continuous action targets are Gaussian histograms of this many bins
    # How the loss averages its targets: "token" (the paper: every target weighs the same, so a text
    # row of 500 targets outweighs a BabyAI row of 3 by 170x) or "row" (every row weighs the same, so
    # each source's share of the gradient is its share of rows; docs/quality.md, "Whose loss it is").
    loss_weighting: str = "token"
    init: str = ""  # start from this checkpoint's weights (fine-tuning, DAgger rounds); optimizer fresh
    # A Dict observation's token order (gato.tokenization.spaces.dict_keys): "modality" (the paper's
    # text, images, tensors), "key", or "": the order --init's weights were trained with, else modality.
    observation_order: str = ""
    prompt_tokens: int = 0  # 0: a quarter of the context
    tokenizer: str = ""  # SentencePiece model file; "": the committed default
    vl_sets: tuple[str, ...] = ()  # vision-language and text sets of the dataset folder (empty: all there)
    vl_weight: float = 0.15  # share of rows drawn from them (paper: about 15%); the rest is control
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    # How the step is executed; these may change when a run is resumed (say on another number of GPUs).
    grad_accum: int = 1  # micro-batches per step on each rank (batch_size stays the global batch)
    parallel: str = "auto"  # with several ranks: ddp, fsdp, or auto (fsdp for gato-364m and gato-1.18b)
    activation_checkpointing: str = "auto"  # on, off, or auto (on for gato-364m and gato-1.18b)
    compile: bool = False  # torch.compile each transformer block
    loader_workers: int = 0  # data loader processes building the next batches (0: the training process)
    precision: str = "auto"  # bf16 autocast or fp32; auto: bf16 on CUDA and CPUs with bf16 matrix units

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A saved configuration (config.json's "train"); `workers`, the field's name in
        checkpoints before it became `loader_workers`, is read as that."""
        if "workers" in d and "loader_workers" not in d:
            d = {("loader_workers" if k == "workers" else k): v for k, v in d.items()}
        return from_dict(cls, d, "training")

    def __post_init__(self):
        if self.max_episodes < 0:
            raise ValueError(f"max_episodes must be >= 0, got {self.max_episodes}")
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("start_prob", "task_balance", "prompt_prob", "vl_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("target_sigma", "warmup", "context"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        parse_task_weights(self.task_weights)
        if self.loss_weighting not in ("token", "row"):
            raise ValueError(f"loss_weighting must be token or row, got {self.loss_weighting!r}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")
        if self.activation_checkpointing not in ("auto", "on", "off"):
            raise ValueError(f"activation_checkpointing must be auto, on or off, got {self.activation_checkpointing!r}")
        if self.parallel not in ("auto", "ddp", "fsdp"):
            raise ValueError(f"parallel must be auto, ddp or fsdp, got {self.parallel!r}")


TOKENIZER_FILE = "tokenizer.model"  # every checkpoint carries its text tokenizer
EXECUTION_FIELDS = ("steps", "grad_accum", "parallel", "activation_checkpointing", "compile", "loader_workers",
                    "precision", "log_every", "checkpoint_every", "keep_checkpoints")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The paper's schedule (SPEC): batch 512 x 1024, warm-up 15k steps to 1e-4, cosine over 1M.
    "paper": TrainConfig(preset="gato-79m", steps=1_000_000, batch_size=512, lr=1e-4, warmup=15_000,
                         checkpoint_every=5000, loader_workers=4),
    # Minutes on a laptop CPU.
    "tiny": TrainConfig(),
    # The shipped gato-tiny (checkpoints/gato-tiny): the demo suite (gato/suites.py DEMO, 50 noise-
    # injected episodes a task: `gato collect --noise auto`) with the vision-language sets and text,
    # episode-start windows, action-balanced tasks and Gaussian-histogram targets (docs/quality.md).
    "gato-tiny": TrainConfig(steps=4000, batch_size=16, context=512, warmup=150, data="data/suite",
                             checkpoint_every=100, log_every=20, start_prob=0.2, task_balance=0.25,
                             target_sigma=2.0),
}


def build_mixture(cfg: TrainConfig, model_cfg: ModelConfig, text: TextTokenizer, context: int) -> Mixture:
    tm = model_cfg.token_map
    prompt_tokens = cfg.prompt_tokens or context // 4
    if cfg.data == "synthetic":
        from gato.data import synthetic
        srcs = synthetic.sources(tm, text, seed=cfg.seed, prompt_tokens=prompt_tokens,
                                 max_local_positions=model_cfg.max_local_positions)
        for s in srcs:
            if hasattr(s, "prompt_prob"):
                s.prompt_prob = cfg.prompt_prob
        return Mixture(srcs, tm, seed=cfg.seed)
    from gato.data.datasets import control_sources, find_tasks
    from gato.envs.registry import task_spec
    from gato.data.vl.sets import find_sets, vl_sources

    root = Path(cfg.data)
    control = control_sources(root, tm, text, tasks=cfg.tasks, threshold=cfg.min_return,
                              prompt_tokens=prompt_tokens, prompt_prob=cfg.prompt_prob,
                              max_local_positions=model_cfg.max_local_positions, start_prob=cfg.start_prob,
                              max_episodes=cfg.max_episodes, spec_of=task_spec, prompt_match=cfg.prompt_match) \
        if cfg.tasks or find_tasks(root) else []
    vl = vl_sources(root, tm, text, names=cfg.vl_sets) if cfg.vl_sets or find_sets(root) else []
    if not control and not vl:
        raise ValueError(f"no task datasets or vision-language sets under {root} (make them with `gato collect`)")
    tokens_per_action = [s.tokens_per_action() for s in control]
    factors = parse_task_weights(cfg.task_weights)
    unknown = sorted(set(factors) - {s.name for s in control})
    if unknown:
        raise ValueError(f"task_weights name {', '.join(unknown)}, which the mixture does not train on")
    return Mixture(control + vl, tm, seed=cfg.seed,
                   weights=mixture_weights(len(control), len(vl), cfg.vl_weight, tokens_per_action, cfg.task_balance,
                                           [factors.get(s.name, 1.0) for s in control]))


def mixture_weights(n_control: int, n_vl: int, vl_weight: float, tokens_per_action: list[float] | None = None,
                    balance: float = 0.0, factors: list[float] | None = None) -> list[float]:
    """Control sources share 1 - vl_weight, vision-language sources vl_weight (all of it goes to
    whichever kind is the only one present). Within control, task t gets a share proportional to
    tokens_per_action[t] ** balance: 0 gives every task the same rows, 1 the same action tokens
    (a task with 150-token observations and one action then gets 25x the rows of one with 5);
    `factors` multiply those shares before they are normalised (`task_weights`)."""
    if not 0 <= vl_weight <= 1:
        raise ValueError(f"vl_weight must be in [0, 1], got {vl_weight}")
    if not 0 <= balance <= 1:
        raise ValueError(f"task_balance must be in [0, 1], got {balance}")
    share = np.asarray(tokens_per_action if tokens_per_action is not None else [1.0] * n_control, float) ** balance
    if factors is not None:
        share = share * np.asarray(factors, float)
    share = share / share.sum() if n_control else share
    if not n_control or not n_vl:
        return list(share) + [1.0 / max(n_vl, 1)] * n_vl if n_control else [1.0] * n_vl
    return list((1 - vl_weight) * share) + [vl_weight / n_vl] * n_vl
