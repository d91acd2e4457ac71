"""The training loop. Everything that changes while training has state_dict()/load_state_dict()
(model, optimizer, step, data cursor, RNG), so a run killed at step k and resumed ends with the
same weights as a run that was never killed (on CPU; tests/test_train.py checks it)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gato.config import ModelConfig, get_preset
from gato.data.sampling import Mixture
from gato.model import Gato
from gato.tokenization.text import TextTokenizer
from gato.training import checkpoint as ckpt
from gato.training.loss import masked_loss, target_mask
from gato.training.schedule import lr_at


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
    min_return: float = 0.8  # keep episodes with at least this fraction of the expert return
    prompt_prob: float = 0.25
    prompt_tokens: int = 0  # 0: a quarter of the context
    tokenizer: str = ""  # SentencePiece model file; "": the committed default
    vl_sets: tuple[str, ...] = ()  # vision-language and text sets of the dataset folder (empty: all there)
    vl_weight: float = 0.15  # share of rows drawn from them (paper: about 15%); the rest is control
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The paper's schedule (SPEC): batch 512 x 1024, warm-up 15k steps to 1e-4, cosine over 1M.
    "paper": TrainConfig(preset="gato-79m", steps=1_000_000, batch_size=512, lr=1e-4, warmup=15_000,
                         checkpoint_every=5000),
    # Minutes on a laptop CPU.
    "tiny": TrainConfig(),
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
    from gato.data.vision_language import find_sets, vl_sources

    root = Path(cfg.data)
    control = control_sources(root, tm, text, tasks=cfg.tasks, threshold=cfg.min_return,
                              prompt_tokens=prompt_tokens, prompt_prob=cfg.prompt_prob,
                              max_local_positions=model_cfg.max_local_positions) \
        if cfg.tasks or find_tasks(root) else []
    vl = vl_sources(root, tm, text, names=cfg.vl_sets) if cfg.vl_sets or find_sets(root) else []
    if not control and not vl:
        raise ValueError(f"no task datasets or vision-language sets under {root} (make them with `gato collect`)")
    return Mixture(control + vl, tm, weights=mixture_weights(len(control), len(vl), cfg.vl_weight), seed=cfg.seed)


def mixture_weights(n_control: int, n_vl: int, vl_weight: float) -> list[float]:
    """Control sources share 1 - vl_weight equally, vision-language sources vl_weight (all of it
    goes to whichever kind is the only one present)."""
    if not 0 <= vl_weight <= 1:
        raise ValueError(f"vl_weight must be in [0, 1], got {vl_weight}")
    if not n_control or not n_vl:
        return [1.0] * (n_control + n_vl)
    return [(1 - vl_weight) / n_control] * n_control + [vl_weight / n_vl] * n_vl


class Trainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig | None = None, *,
                 device: str = "cpu", text: TextTokenizer | None = None):
        self.cfg = cfg
        self.model_cfg = model_cfg or get_preset(cfg.preset)
        self.device = torch.device(device)
        self.text = text or (TextTokenizer.from_file(cfg.tokenizer) if cfg.tokenizer else TextTokenizer.default())
        if self.text.vocab_size > self.model_cfg.text_vocab:
            raise ValueError(f"tokenizer {self.text.source} has {self.text.vocab_size} ids but the model's "
                             f"text range is [0, {self.model_cfg.text_vocab})")
        torch.manual_seed(cfg.seed)
        self.model = Gato(self.model_cfg).to(self.device)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        other = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=self.device.type == "cuda")
        self.context = cfg.context or self.model_cfg.context
        self.data = build_mixture(cfg, self.model_cfg, self.text, self.context)
        self.step = 0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "data": self.data.state_dict(), "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data.load_state_dict(state["data"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def meta(self) -> dict:
        return {"model": self.model_cfg.to_dict(), "train": dataclasses.asdict(self.cfg),
                "token_map": self.model_cfg.token_map.to_dict(), "tokenizer": self.text.reference(),
                "step": self.step}

    def save(self, run_dir: Path) -> Path:
        path = ckpt.save_checkpoint(run_dir / ckpt.checkpoint_name(self.step),
                                    weights=self.model.state_dict(), meta=self.meta(),
                                    state=self.state_dict())
        done = sorted(p for p in run_dir.glob("step_*") if p.is_dir() and "tmp" not in p.name)
        for old in done[:-self.cfg.keep_checkpoints]:
            shutil.rmtree(old)
        return path

    def restore(self, path: Path) -> None:
        meta = ckpt.load_meta(path)
        if meta["model"] != self.model_cfg.to_dict():
            raise ValueError(f"{path}: checkpoint model config differs from this run's: "
                             f"{_diff(meta['model'], self.model_cfg.to_dict())}")
        saved_tok = meta.get("tokenizer", {}).get("sha256")
        if saved_tok != self.text.sha256:
            raise ValueError(f"{path}: checkpoint was trained with tokenizer {meta.get('tokenizer')}, "
                             f"this run uses {self.text.reference()}")
        ckpt.load_model_weights(self.model, path)
        self.load_state_dict(ckpt.load_state(path))

    # ------------------------------------------------------------------ loop
    def train_step(self, batch) -> tuple[torch.Tensor, dict]:
        self.model.train()
        lr = lr_at(self.step, peak=self.cfg.lr, warmup=self.cfg.warmup, total=self.cfg.steps,
                   final_ratio=self.cfg.final_lr_ratio)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        batch = batch.to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            logits, _ = self.model(*batch.inputs(), logits_at=target_mask(batch.loss_mask))
            loss, groups = masked_loss(logits, batch.ids, batch.kinds, batch.loss_mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.detach(), groups

    def fit(self, run_dir: Path | None = None, progress: bool = True, max_seconds: float | None = None) -> dict:
        writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(run_dir / "tb"), purge_step=self.step)
        history, t0 = [], time.perf_counter()
        bar = tqdm(total=self.cfg.steps, initial=self.step, disable=not progress, unit="step")
        tokens, t_log = 0, time.perf_counter()
        sums = {}
        try:
            while self.step < self.cfg.steps:
                batch = self.data.sample_batch(self.cfg.batch_size, self.context)
                tokens += batch.num_tokens
                loss, groups = self.train_step(batch)
                for k, v in groups.items():
                    sums[k] = sums.get(k, 0) + v.detach()
                sums["loss"] = sums.get("loss", 0) + loss
                sums["n"] = sums.get("n", 0) + 1
                bar.update(1)
                last = self.step == self.cfg.steps
                if self.step % self.cfg.log_every == 0 or last:
                    dt = time.perf_counter() - t_log
                    rec = {"step": self.step, "loss": float(sums["loss"]) / sums["n"],
                           "tokens_per_s": tokens / dt,
                           **{f"loss_{k}": float(v[0] / v[1]) for k, v in sums.items()
                              if k not in ("loss", "n") and float(v[1]) > 0}}
                    history.append(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
                    if writer:
                        for k, v in rec.items():
                            if k != "step":
                                writer.add_scalar(f"train/{k}", v, self.step)
                    tokens, t_log, sums = 0, time.perf_counter(), {}
                if run_dir is not None and (self.step % self.cfg.checkpoint_every == 0 or last):
                    self.save(run_dir)
                if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                    if run_dir is not None:
                        self.save(run_dir)
                    break
        finally:
            bar.close()
            if writer:
                writer.close()
        return {"step": self.step, "history": history}


def load_model(path: Path, device: str = "cpu") -> tuple[Gato, dict]:
    """A trained model in eval mode and its checkpoint meta (config, token map, tokenizer).

    `path` is a checkpoint folder or a run folder (its newest checkpoint is used)."""
    path = Path(path)
    if not (path / "model.safetensors").exists() and path.is_dir():
        path = ckpt.latest_checkpoint(path) or path
    meta = ckpt.load_meta(path)
    model = Gato(ModelConfig.from_dict(meta["model"]))
    ckpt.load_model_weights(model, path)
    return model.to(device).eval(), meta


def _diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def train(out: Path = Path("runs/gato-tiny"), recipe: str = "tiny", preset: str | None = None,
          steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
          context: int | None = None, seed: int | None = None, data: str | None = None,
          warmup: int | None = None, log_every: int | None = None, checkpoint_every: int | None = None,
          tokenizer: str | None = None, tasks: tuple[str, ...] | None = None,
          vl_sets: tuple[str, ...] | None = None, vl_weight: float | None = None, resume: bool = False, device: str = "auto", max_minutes: float | None = None,
          progress: bool = True) -> dict:
    """Train a Gato model; checkpoints and TensorBoard logs go to OUT.

    Args:
        out: run folder (config.json, step_XXXXXXXX/ checkpoints, tb/ logs).
        recipe: training preset: tiny (minutes on CPU) or paper (the paper's schedule).
        preset: model preset (gato-tiny, gato-79m, gato-364m, gato-1.18b); default: the recipe's.
        steps: total optimizer steps.
        batch_size: sequences per step.
        lr: peak learning rate.
        context: tokens per sequence (default: the model's context).
        seed: seed of weights and data order.
        data: "synthetic" (generated toy tasks, text and captions) or a dataset folder from `gato collect`.
        tasks: tasks of the dataset folder to train on (default: all).
        vl_sets: vision-language and text sets of the dataset folder (default: all; `gato collect vl text`).
        vl_weight: share of each batch drawn from those sets (paper: about 0.15).
        warmup: linear warm-up steps.
        log_every: steps between log lines (progress bar, TensorBoard).
        checkpoint_every: steps between checkpoints.
        tokenizer: SentencePiece model file (default: the committed one; see `gato tokenizer train`).
        resume: continue exactly from the newest checkpoint in OUT.
        device: auto, cpu or cuda.
        max_minutes: stop (with a checkpoint) after this many minutes.
        progress: show a progress bar.
    """
    if recipe not in TRAIN_PRESETS:
        raise ValueError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(TRAIN_PRESETS)}")
    overrides = {k: v for k, v in dict(preset=preset, steps=steps, batch_size=batch_size, lr=lr,
                                       context=context, seed=seed, data=data, warmup=warmup,
                                       log_every=log_every, checkpoint_every=checkpoint_every,
                                       tokenizer=tokenizer, tasks=tasks, vl_sets=vl_sets,
                                       vl_weight=vl_weight).items()
                 if v is not None}
    cfg = dataclasses.replace(TRAIN_PRESETS[recipe], **overrides)
    get_preset(cfg.preset)  # clear error for an unknown preset before any work
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(out)
    latest = ckpt.latest_checkpoint(out) if out.exists() else None
    if resume and latest is not None:
        saved = ckpt.load_meta(latest)["train"]
        mine = json.loads(json.dumps(dataclasses.asdict(cfg)))
        if {k: v for k, v in saved.items() if k != "steps"} != {k: v for k, v in mine.items() if k != "steps"}:
            raise ValueError(f"{latest}: cannot resume with a different training config: {_diff(saved, mine)}")
    elif latest is not None:
        raise ValueError(f"{out} already holds checkpoints (newest {latest.name}); pass --resume to "
                         f"continue it or choose another --out")
    trainer = Trainer(cfg, device=device)
    out.mkdir(parents=True, exist_ok=True)
    if resume and latest is not None:
        trainer.restore(latest)
        print(f"resumed from {latest} at step {trainer.step}")
    write_json_atomic(out / "config.json", trainer.meta())
    n = trainer.model.num_params()
    print(f"training {trainer.model_cfg.name} ({n / 1e6:.2f}M parameters) on {device}, "
          f"{cfg.batch_size} x {trainer.context} tokens per step, {cfg.steps} steps -> {out}")
    result = trainer.fit(out, progress=progress, max_seconds=None if max_minutes is None else 60 * max_minutes)
    write_json_atomic(out / "history.json", result["history"])
    return result
