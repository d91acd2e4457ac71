"""A trained model from a checkpoint or run folder, with the text tokenizer it was trained with:
what acting, evaluation, generation and fine-tuning load. Bad files are refused with the file
named before anything large is allocated."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from gato.config import ModelConfig
from gato.model import Gato
from gato.tokenization.text import TextTokenizer
from gato.training import checkpoint as ckpt
from gato.training.config import TOKENIZER_FILE


def checkpoint_folder(path: Path) -> Path:
    """`path` itself if it is a checkpoint folder, else the newest checkpoint of the run folder."""
    path = Path(path)
    if path.is_file():
        raise ValueError(f"{path} is a file: give the checkpoint folder that holds it ({path.parent})")
    if not (path / "model.safetensors").exists() and path.is_dir():
        path = ckpt.latest_checkpoint(path) or path
    return path


def check_output_folder(out: Path, sources: list[Path], force: bool, verb: str) -> None:
    """Refuse an --out that would lose something: a folder that is not a checkpoint, a checkpoint
    being read (`verb`: what is done to it), or an existing checkpoint without --force."""
    out = Path(out)
    if not out.exists():
        return
    if not ckpt.is_checkpoint(out):
        raise ValueError(f"--out {out} exists and is not a checkpoint: choose a new folder (nothing there is replaced)")
    if out.resolve() in {checkpoint_folder(s).resolve() for s in sources}:
        raise ValueError(f"--out {out} is a checkpoint being {verb}")
    if not force:
        raise ValueError(f"--out {out} already holds a checkpoint; pass --force to replace it")


def load_model(path: Path, device: str = "cpu") -> tuple[Gato, dict]:
    """A trained model in eval mode and its checkpoint meta (config, token map, tokenizer).

    `path` is a checkpoint folder or a run folder (its newest checkpoint is used)."""
    path = checkpoint_folder(path)
    meta = ckpt.load_meta(path)
    try:
        cfg = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{path / 'config.json'}: not a valid model config ({e})") from None
    # Act and generate within the window it was trained on: rotary attention has never seen
    # distances past the training context, and they degrade it.
    trained = meta.get("train", {}).get("context") or cfg.context
    cfg = dataclasses.replace(cfg, context=min(cfg.context, trained))
    _check_size(path, cfg)
    model = Gato(cfg)
    ckpt.load_model_weights(model, path)
    return model.to(device).eval(), meta


def _check_size(path: Path, cfg: ModelConfig) -> None:
    """Refuse a config.json that describes more parameters than model.safetensors holds (a huge
    vocabulary, width or depth, crafted or corrupt) before allocating any: counted on the meta
    device, after bounding the depth by the file's tensor count (every layer has weights)."""
    shapes = ckpt.weights_shapes(path)
    config, weights = path / "config.json", path / "model.safetensors"
    if cfg.num_layers > len(shapes):
        raise ckpt.CheckpointError(f"{config}: num_layers {cfg.num_layers} is more than the {len(shapes)} tensors "
                                   f"{weights} holds")
    try:
        with torch.device("meta"):
            n = Gato(cfg).num_params()
    except (RuntimeError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{config}: not a valid model config ({e})") from None
    held = sum(math.prod(s) for s in shapes.values())
    if n > held:
        raise ckpt.CheckpointError(f"{config} describes a model of {n:,} parameters but {weights} holds "
                                   f"{held:,} values: refusing to build it")


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[Gato, dict, TextTokenizer]:
    """A trained model (eval mode), its checkpoint meta and the text tokenizer it was trained with
    (checked first: a tokenizer that does not fit the model is refused before it is built)."""
    text = load_tokenizer(Path(path))
    model, meta = load_model(Path(path), device)
    return model, meta, text


def load_tokenizer(path: Path) -> TextTokenizer:
    """The text tokenizer a checkpoint was trained with: its own copy (checked against the hash in
    its config and against the model's text ids), or the committed default for checkpoints that
    carry none."""
    path = checkpoint_folder(path)
    meta = ckpt.load_meta(path)
    ref = meta.get("tokenizer", {})
    own = path / TOKENIZER_FILE
    text = TextTokenizer.from_file(own) if own.exists() else TextTokenizer.default()
    if ref.get("sha256") != text.sha256:
        raise ValueError(f"{path}: trained with tokenizer {ref}, but {text.source} has sha256 {text.sha256}; "
                         f"put that tokenizer's .model file in the checkpoint as {TOKENIZER_FILE}")
    vocab = meta.get("model", {}).get("text_vocab")
    if vocab is not None and text.vocab_size > vocab:
        raise ValueError(f"{path}: tokenizer {text.source} has {text.vocab_size} ids but the model's text_vocab "
                         f"in config.json is {vocab}")
    return text
