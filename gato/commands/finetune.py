"""`gato finetune`: a pretrained checkpoint learns a task from N demonstrations (paper, section 5.2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tyro.conf import Positional

from gato.agent import check_action_space
from gato.commands.data import collect
from gato.commands.evaluate import evaluate
from gato.config import ModelConfig
from gato.data.episode import TaskSpec
from gato.device import resolve_device
from gato.envs import get_task
from gato.io import folder_lock
from gato.training import checkpoint as ckpt
from gato.training.config import TrainConfig
from gato.training.trainer import run_training
from gato.training.loading import checkpoint_folder


def finetune(checkpoint: Positional[Path], task: str, episodes: int = 10, steps: int = 300,
             out: Path = Path("runs/finetune"), data: Path | None = None, noise: float = 0.0, lr: float = 1e-4,
             batch_size: int | None = None, scratch: bool = False, eval_episodes: int = 20,
             device: str = "auto", progress: bool = True) -> dict:
    """Fine-tune all weights of a checkpoint on EPISODES demonstrations of TASK (collected into
    OUT/data unless DATA is given), then evaluate it; resumable like `gato train`.

    Args:
        checkpoint: the pretrained checkpoint (checkpoint or run folder).
        task: the task to learn (its spaces must be ones the token map expresses).
        episodes: demonstrations to learn from (the first EPISODES training episodes of the dataset).
        steps: fine-tuning steps.
        out: OUT/data (the demonstrations), OUT/model (checkpoints), OUT/eval (results).
        data: an existing dataset root holding the task instead of collecting one.
        noise: collect noise-injected demonstrations (`gato collect --noise`).
        lr: peak learning rate (smaller than pretraining's: the weights are already trained).
        batch_size: sequences per step (default: the checkpoint's).
        scratch: the same recipe from random weights (the paper's baseline), instead of the checkpoint's.
        eval_episodes: evaluation episodes after fine-tuning (0: none).
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
        progress: show progress bars.
    """
    if episodes < 1 or steps < 1 or eval_episodes < 0:
        raise ValueError(f"episodes and steps must be >= 1 and eval_episodes >= 0, got {episodes}, {steps} "
                         f"and {eval_episodes}")
    device = str(resolve_device(device))
    src = checkpoint_folder(Path(checkpoint))
    base = TrainConfig.from_dict(ckpt.load_meta(src)["train"])
    t = get_task(task)
    env = t.make()
    check_action_space(TaskSpec(t.name, env.observation_space, env.action_space),
                       ModelConfig.from_dict(ckpt.load_meta(src)["model"]).token_map)
    env.close()
    out = Path(out)
    with folder_lock(out, "gato finetune"):
        root = Path(data) if data is not None else out / "data"
        if data is None:
            collect((task,), episodes=episodes, out=root, noise=noise, progress=progress)
        cfg = dataclasses.replace(base, init="" if scratch else str(src), data=str(root), tasks=(task,), vl_sets=(),
                                  task_weights=(), vl_weight=0.0, steps=steps, warmup=min(base.warmup, steps // 10),
                                  lr=lr, batch_size=batch_size or base.batch_size, max_episodes=episodes,
                                  checkpoint_every=min(base.checkpoint_every, steps))
        model_dir = out / "model"
        latest = ckpt.latest_checkpoint(model_dir) if model_dir.exists() else None
        if latest is None or ckpt.load_meta(latest)["step"] < steps:
            run_training(cfg, model_dir, device=device, resume=latest is not None, progress=progress)
        result = {"checkpoint": str(ckpt.latest_checkpoint(model_dir)), "task": task, "episodes": episodes,
                  "scratch": scratch}
        if eval_episodes:
            r = evaluate(model_dir, tasks=(task,), episodes=eval_episodes, envs=min(eval_episodes, 16),
                         out=out / "eval", data=root, videos=0, vl=False, device=device, progress=progress,
                         force=True)  # OUT/eval is this command's own: it follows the model
            result["normalized"] = r["tasks"][task]["normalized"]
    return result
