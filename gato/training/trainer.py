"""The training loop, on one process or many (torchrun; gato/training/distributed.py).

Everything that changes while training is in the checkpoint (model, optimizer, step; the data
cursor and every random draw of step s are functions of the seed and s), so a run killed at step
k and resumed ends with the same weights as a run that was never killed (on CPU;
tests/test_train.py checks it), and one resumed on another number of ranks with the same
weights up to float summation order (tests/test_distributed.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gato import io
from gato.config import ModelConfig, config_diff, get_preset
from gato.data.loader import step_batches
from gato.data.sampling import Batch
from gato.device import resolve_device
from gato.model import Gato
from gato.tokenization.text import TextTokenizer
from gato.training import checkpoint as ckpt
from gato.training import distributed, precision
from gato.training.distributed import LARGE_PRESETS, Dist
from gato.training.loss import loss_units, masked_loss, target_mask
from gato.training.config import EXECUTION_FIELDS, TOKENIZER_FILE, TrainConfig, build_mixture
from gato.training.growing import expansion, grow_depth
from gato.training.loading import checkpoint_folder
from gato.training.schedule import lr_at


class Trainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig | None = None, *,
                 device: str = "cpu", text: TextTokenizer | None = None, dist: Dist = Dist()):
        self.cfg, self.dist = cfg, dist
        self.model_cfg = model_cfg or model_config(cfg)
        if cfg.context > self.model_cfg.context:
            raise ValueError(f"context {cfg.context} is above the {self.model_cfg.name} model's context of "
                             f"{self.model_cfg.context} tokens")
        self.device = torch.device(device)
        self.text = text or (TextTokenizer.from_file(cfg.tokenizer) if cfg.tokenizer else TextTokenizer.default())
        if self.text.vocab_size > self.model_cfg.text_vocab:
            raise ValueError(f"tokenizer {self.text.source} has {self.text.vocab_size} ids but the model's "
                             f"text range is [0, {self.model_cfg.text_vocab})")
        self.rows = dist.rows(cfg.batch_size, cfg.grad_accum)  # this rank's micro-batches of rows
        torch.manual_seed(cfg.seed)
        self.model = Gato(self.model_cfg).to(self.device)
        if cfg.init:
            self._init_from(Path(cfg.init))
        large = self.model_cfg.name in LARGE_PRESETS
        if cfg.activation_checkpointing == "on" or (cfg.activation_checkpointing == "auto" and large):
            distributed.apply_activation_checkpointing(self.model)
        if cfg.compile:
            for block in self.model.blocks:
                block.compile()
        self.parallel = distributed.resolve_parallel(cfg.parallel, self.model_cfg.name, dist)
        self.engine = distributed.wrap(self.model, self.parallel, self.device)  # what forward runs through
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        other = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=self.device.type == "cuda")
        self.context = cfg.context or self.model_cfg.context
        self.precision = precision.resolve(cfg.precision, self.device)
        self.data = build_mixture(cfg, self.model_cfg, self.text, self.context)
        self.data_fingerprint = self.data.fingerprint()
        self.step = 0

    def _init_from(self, path: Path) -> None:
        """Weights of another checkpoint, which must have this model's shape and tokenizer, or the
        same but fewer layers: then it grows into this one and computes what it did (growing.py)."""
        path = checkpoint_folder(path)
        meta = ckpt.load_meta(path)
        ignored = ("name", "context", "dropout", "observation_order")  # the order may be changed on purpose
        theirs = {k: v for k, v in ModelConfig.from_dict(meta["model"]).to_dict().items() if k not in ignored}
        mine = {k: v for k, v in self.model_cfg.to_dict().items() if k not in ignored}
        have, want = theirs.get("num_layers"), mine["num_layers"]
        shallower = isinstance(have, int) and 1 <= have < want and {**theirs, "num_layers": want} == mine
        if theirs != mine and not shallower:
            raise ValueError(f"--init {path}: its model differs from {self.model_cfg.name}: {config_diff(theirs, mine)}"
                             " (only the number of layers may be smaller)")
        if meta.get("tokenizer", {}).get("sha256") != self.text.sha256:
            raise ValueError(f"--init {path}: trained with tokenizer {meta.get('tokenizer')}, not "
                             f"{self.text.source} (sha256 {self.text.sha256})")
        if not shallower:
            ckpt.load_model_weights(self.model, path)
            return
        weights = grow_depth(ckpt.load_weights(path), have, want)
        self.model.load_state_dict(weights, strict=True)
        if self.dist.main:
            print(f"--init {path}: its {have} layers grown to {want} (blocks {expansion(have, want)}; each copy "
                  "starts with its output projections at zero, so the model computes what it did)")

    # ------------------------------------------------------------------ state
    def facts(self) -> dict:
        """What every rank must agree on before training."""
        return {"train": json.loads(json.dumps(dataclasses.asdict(self.cfg))), "model": self.model_cfg.to_dict(),
                "tokenizer": self.text.sha256, "data": self.data_fingerprint, "torch": torch.__version__}

    def meta(self) -> dict:
        return {"model": self.model_cfg.to_dict(), "train": dataclasses.asdict(self.cfg),
                "token_map": self.model_cfg.token_map.to_dict(), "tokenizer": self.text.reference(),
                "step": self.step, "world_size": self.dist.world, "parallel": self.parallel,
                "precision": self.precision, "data_fingerprint": self.data_fingerprint}

    def save(self, run_dir: Path) -> Path | None:
        """Gather the full (unsharded) state to rank 0 and write a checkpoint there (every rank calls it)."""
        weights, optim = distributed.full_state(self.model, self.optimizer)
        state = {"step": self.step, "optimizer": optim, "data": self.data.state_dict()}

        def write() -> Path:
            path = ckpt.save_checkpoint(run_dir / ckpt.checkpoint_name(self.step), weights=weights,
                                        meta=self.meta(), state=state, files={TOKENIZER_FILE: self.text.to_bytes()})
            done = sorted(p for p in run_dir.glob("step_*") if p.is_dir() and "tmp" not in p.name)
            for old in done[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(old)
            return path

        return distributed.on_main(self.dist, write)

    def restore(self, path: Path) -> None:
        """Load a checkpoint written on any number of ranks (every rank calls it; rank 0 reads the tensors)."""
        meta = ckpt.load_meta(path)
        saved = ModelConfig.from_dict(meta["model"]).to_dict()
        if saved != self.model_cfg.to_dict():
            raise ValueError(f"{path}: checkpoint model config differs from this run's: "
                             f"{config_diff(saved, self.model_cfg.to_dict())}")
        saved_tok = meta.get("tokenizer", {}).get("sha256")
        if saved_tok != self.text.sha256:
            raise ValueError(f"{path}: checkpoint was trained with tokenizer {meta.get('tokenizer')}, "
                             f"this run uses {self.text.reference()}")

        def read() -> tuple[dict, dict]:
            weights = ckpt.load_weights(path, expected=self.model.state_dict())
            state = ckpt.load_state(path)
            self.data.load_state_dict(state["data"])  # checks the cursor's format
            return weights, state

        weights, state = distributed.on_main(self.dist, read) or ({}, {})
        cursor = distributed.broadcast(self.dist, state.get("data"))
        distributed.load_full_state(self.model, self.optimizer, weights, state.get("optimizer", {}), self.dist)
        self.data.load_state_dict(cursor)
        self.step = self.data.step

    # ------------------------------------------------------------------ loop
    def train_step(self, batches: Batch | list[Batch]) -> tuple[torch.Tensor, dict]:
        """One optimizer step over this rank's micro-batches. Each micro-batch's loss is its summed
        target losses over the step's global count of targets (or of rows, `loss_weighting` row;
        times the world size, which DDP / FSDP divide back out), so the gradient is the whole
        global batch's mean whatever the split.

        Returns this rank's share of the global mean loss (the shares sum to it) and its per-group
        (sum, count) of target losses."""
        micro = [batches] if isinstance(batches, Batch) else list(batches)
        self.model.train()
        lr = lr_at(self.step, peak=self.cfg.lr, warmup=self.cfg.warmup, total=self.cfg.steps,
                   final_ratio=self.cfg.final_lr_ratio)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        torch.manual_seed(step_seed(self.cfg.seed, self.step, self.dist.rank))  # dropout of this step
        per_row = self.cfg.loss_weighting == "row"
        targets = torch.tensor(float(sum(loss_units(b.loss_mask, per_row) for b in micro)), device=self.device)
        per_rank = distributed.all_reduce_sum(targets, self.dist).clamp(min=1) / self.dist.world
        self.optimizer.zero_grad(set_to_none=True)
        share, sums = torch.zeros((), device=self.device), {}
        try:
            for i, b in enumerate(micro):
                b = b.to(self.device)
                with distributed.grad_sync(self.engine, i == len(micro) - 1), \
                        precision.autocast(self.precision, self.device):
                    logits, _ = self.engine(*b.inputs(), logits_at=target_mask(b.loss_mask))
                    loss, groups = masked_loss(logits, b.targets, b.kinds, b.loss_mask, total=per_rank,
                                               sigma=self.cfg.target_sigma, per_row=per_row,
                                               continuous=self.model_cfg.token_map.continuous_range())
                loss.backward()
                share += loss.detach() / self.dist.world
                for k, v in groups.items():
                    sums[k] = sums.get(k, 0) + v.detach()
        except torch.OutOfMemoryError as e:
            raise MemoryError(self._oom_advice(micro)) from e
        except RuntimeError as e:
            if "can't allocate memory" not in str(e):
                raise
            raise MemoryError(self._oom_advice(micro)) from e
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.data.step = self.step
        return share, sums

    def _oom_advice(self, micro: list[Batch]) -> str:
        rows, T = micro[0].ids.shape
        return (f"out of memory training {self.model_cfg.name} with {rows} rows x {T} tokens per micro-batch "
                f"on {self.device} ({self.dist.world} rank(s), parallel {self.parallel}, activation "
                f"checkpointing {self.cfg.activation_checkpointing}): raise --grad-accum to split the step into "
                f"smaller micro-batches, turn on --activation-checkpointing on, or shard the model over more "
                f"GPUs with --parallel fsdp under torchrun (docs/scaling.md)")

    def fit(self, run_dir: Path | None = None, progress: bool = True, max_seconds: float | None = None,
            on_save=None) -> dict:
        """Train to cfg.steps (or `max_seconds`), checkpointing into `run_dir`; `on_save(trainer,
        run_dir)` runs on the main rank after each checkpoint (e.g. a learning-curve evaluation)."""
        main = self.dist.main
        writer = None
        if run_dir is not None and main:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(run_dir / "tb"), purge_step=self.step)
        history, t0 = [], time.perf_counter()
        bar = tqdm(total=self.cfg.steps, initial=self.step, disable=not (progress and main), unit="step")
        tokens, t_log = 0, time.perf_counter()
        sums = {}
        batches = step_batches(self.data, self.rows, self.context, self.step, self.cfg.steps,
                               workers=self.cfg.loader_workers, pin_memory=self.device.type == "cuda")
        try:
            for micro in batches:
                tokens += sum(b.num_tokens for b in micro)
                loss, groups = self.train_step(micro)
                for k, v in groups.items():
                    sums[k] = sums.get(k, 0) + v
                sums["loss"] = sums.get("loss", 0) + loss
                sums["n"] = sums.get("n", 0) + 1
                bar.update(1)
                last = self.step == self.cfg.steps
                if self.step % self.cfg.log_every == 0 or last:
                    dt = time.perf_counter() - t_log
                    sums["tokens"] = tokens
                    sums = self._sum_over_ranks(sums)
                    rec = {"step": self.step, "loss": float(sums["loss"]) / sums["n"],
                           "tokens_per_s": float(sums["tokens"]) / dt,
                           **{f"loss_{k}": float(v[0] / v[1]) for k, v in sums.items()
                              if k not in ("loss", "n", "tokens") and float(v[1]) > 0}}
                    history.append(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
                    if main and bar.disable:  # a log file still gets one line per log_every steps
                        print(f"step {self.step}/{self.cfg.steps} loss {rec['loss']:.3f} "
                              f"tokens/s {rec['tokens_per_s']:.0f}", flush=True)
                    if writer:
                        for k, v in rec.items():
                            if k != "step":
                                writer.add_scalar(f"train/{k}", v, self.step)
                    tokens, t_log, sums = 0, time.perf_counter(), {}
                out_of_time = max_seconds is not None and self._any_rank(time.perf_counter() - t0 > max_seconds)
                if run_dir is not None and (self.step % self.cfg.checkpoint_every == 0 or last or out_of_time):
                    self.save(run_dir)
                    if on_save is not None and main:
                        on_save(self, run_dir)
                if out_of_time:
                    break
        except RuntimeError as e:
            if not distributed.is_peer_failure(e, self.dist):
                raise
            raise RuntimeError(f"rank {self.dist.rank}: a collective failed at step {self.step + 1} "
                               f"(another rank stopped or timed out; torchrun's summary names it). Resume "
                               f"from the last checkpoint with --resume, on any number of ranks") from e
        finally:
            bar.close()
            if writer:
                writer.close()
        return {"step": self.step, "history": history}

    def _sum_over_ranks(self, sums: dict) -> dict:
        """Logged sums over all ranks (one all-reduce per log line); the step count `n` is everyone's."""
        if self.dist.world == 1:
            return sums
        parts = {k: torch.as_tensor(v, dtype=torch.float64).to(self.device).reshape(-1)
                 for k, v in sums.items() if k != "n"}
        flat = distributed.all_reduce_sum(torch.cat(list(parts.values())), self.dist)
        out = {"n": sums["n"]}
        for k, chunk in zip(parts, flat.split([len(v) for v in parts.values()])):
            out[k] = chunk if len(chunk) > 1 else chunk[0]
        return out

    def _any_rank(self, flag: bool) -> bool:
        t = torch.tensor(float(flag), device=self.device)
        return bool(distributed.all_reduce_sum(t, self.dist) > 0)


def step_seed(seed: int, step: int, rank: int) -> int:
    """torch's seed for the random draws inside the model (dropout) at `step` on `rank`."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def model_config(cfg: TrainConfig, resumed: Path | None = None) -> ModelConfig:
    """The preset's model, reading Dict observations in the order its weights learned: a resumed
    run's, else `cfg.observation_order`, else --init's, else the paper's (a new model)."""
    order = cfg.observation_order
    source = resumed or (None if order or not cfg.init else checkpoint_folder(Path(cfg.init)))
    if source is not None:
        order = ModelConfig.from_dict(ckpt.load_meta(source)["model"]).observation_order
    preset = get_preset(cfg.preset)
    return dataclasses.replace(preset, observation_order=order) if order else preset


def run_training(cfg: TrainConfig, out: Path, *, device: str = "auto", resume: bool = False, progress: bool = True,
                 max_minutes: float | None = None, timeout_s: float = 600.0, on_save=None,
                 allow_data_change: bool = False) -> dict:
    """Train with a resolved configuration (what `gato train`, `gato dagger` and fine-tuning call)."""
    get_preset(cfg.preset)  # clear error for an unknown preset before any work
    if max_minutes is not None and not max_minutes >= 0:  # 0: stop after the first step
        raise ValueError(f"max_minutes must be >= 0, got {max_minutes}")
    device = str(resolve_device(device))
    d = distributed.init(device, timeout_s)
    try:
        return _train(Path(out), cfg, d, f"cuda:{d.local_rank}" if device == "cuda" else device, resume,
                      progress, max_minutes, on_save, allow_data_change)
    finally:
        distributed.shutdown(d)


def _train(out: Path, cfg: TrainConfig, d: Dist, device: str, resume: bool, progress: bool,
           max_minutes: float | None, on_save=None, allow_data_change: bool = False) -> dict:
    with io.folder_lock(out, "gato train") if d.main else contextlib.nullcontext():
        return _train_locked(out, cfg, d, device, resume, progress, max_minutes, on_save, allow_data_change)


def _train_locked(out: Path, cfg: TrainConfig, d: Dist, device: str, resume: bool, progress: bool,
                  max_minutes: float | None, on_save, allow_data_change: bool) -> dict:
    latest = ckpt.latest_checkpoint(out) if out.exists() else None
    if resume and latest is not None:
        # fields added since the checkpoint was written take their defaults
        saved = json.loads(json.dumps(dataclasses.asdict(TrainConfig.from_dict(ckpt.load_meta(latest)["train"]))))
        mine = json.loads(json.dumps(dataclasses.asdict(cfg)))
        same = lambda c: {k: v for k, v in c.items() if k not in EXECUTION_FIELDS}  # noqa: E731
        if same(saved) != same(mine):
            raise ValueError(f"{latest}: cannot resume with a different training config: "
                             f"{config_diff(same(saved), same(mine))}")
    elif latest is not None:
        raise ValueError(f"{out} already holds checkpoints (newest {latest.name}); pass --resume to "
                         f"continue it or choose another --out")
    elif out.exists() and not _is_run_folder(out):
        raise ValueError(f"{out} holds files that are not a gato run; choose a new or empty --out "
                         "(nothing there is overwritten)")
    trainer = Trainer(cfg, model_config(cfg, latest if resume else None), device=device, dist=d)
    # a rank on a node that does not share OUT would see other checkpoints: that is an error too
    distributed.check_same(d, trainer.facts() | {"out": str(out.resolve()),
                                                 "newest checkpoint": latest and latest.name})
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    if resume and latest is not None:
        before = ckpt.load_meta(latest).get("data_fingerprint")
        if before is not None and before != trainer.data_fingerprint and not allow_data_change:
            raise ValueError(f"{latest}: the training data changed since this run started (fingerprint "
                             f"{before}, now {trainer.data_fingerprint}): resuming would not be exact. "
                             "Restore the data, pass --allow-data-change, or start a new run from these "
                             "weights with --init")
        trainer.restore(latest)
        if d.main:
            print(f"resumed from {latest} at step {trainer.step}")
            if (out / "history.json").exists():
                history = [r for r in io.read_json(out / "history.json", "training history")
                           if r.get("step", 0) <= trainer.step]
    if d.main:
        io.write_json(out / "config.json", trainer.meta(), indent=2)
        n = trainer.model.num_params()
        ranks = f" x {d.world} ranks ({trainer.parallel})" if d.world > 1 else ""
        print(f"training {trainer.model_cfg.name} ({n / 1e6:.2f}M parameters) on {device}{ranks}, "
              f"{cfg.batch_size} x {trainer.context} tokens per step, {cfg.steps} steps -> {out}")
    distributed.barrier(d)
    result = trainer.fit(out, progress=progress, max_seconds=None if max_minutes is None else 60 * max_minutes,
                         on_save=on_save)
    if d.main:
        result["history"] = history + result["history"]
        io.write_json(out / "history.json", result["history"], indent=2)
        if result["step"] < cfg.steps:
            print(f"stopped at step {result['step']} of {cfg.steps} after {max_minutes:g} minutes (max_minutes), "
                  f"with a checkpoint in {out} to resume from")
    return result


RUN_FILES = {"config.json", "history.json", "tb", "curve.json", io.LOCK_FILE}


def _is_run_folder(out: Path) -> bool:
    """Empty, or only what a gato run writes (a run killed before its first checkpoint)."""
    return all(p.name in RUN_FILES or p.name.startswith(("step_", ".")) for p in out.iterdir())
