"""`gato chat`, `gato caption` and `gato vqa`: a trained model's text, the same weights that act
(gato/generation.py holds the prompts and the generation loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tyro.conf import Positional

from gato.generation import generate, image_prompt, text_prompt


def _setup(checkpoint: Path, device: str, seed: int):
    """The checkpoint's model and tokenizer, and a seeded generator to sample with."""
    from gato.training.trainer import load_checkpoint

    model, _, text = load_checkpoint(Path(checkpoint), device)
    return model, text, torch.Generator(device=device).manual_seed(seed)


def _images(paths, size: int) -> list[np.ndarray]:
    """The image files as size x size arrays, as in training; a missing file is named."""
    from gato.data.vl.formats import load_image

    if not paths:
        raise ValueError("give at least one image file")
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"image file not found: {p}")
        out.append(load_image(Path(p), size))
    return out


def caption(checkpoint: Positional[Path], images: Positional[tuple[Path, ...]], temperature: float = 0.9,
            max_tokens: int = 32, size: int = 64, seed: int = 0, device: str = "cpu") -> dict[str, str]:
    """Caption images with a trained model (temperature 0.9, as the paper samples captions).

    Args:
        checkpoint: checkpoint or run folder.
        images: image files (any format Pillow reads).
        temperature: sampling temperature (0: greedy).
        max_tokens: longest caption, in tokens.
        size: images are resized to size x size, as in training (64 for the offline sets).
        seed: sampling seed.
        device: cpu or cuda.
    """
    model, text, gen = _setup(checkpoint, device, seed)
    tm = model.cfg.token_map
    prompts = [image_prompt(im, np.zeros(0, np.int64), tm) for im in _images(images, size)]
    out = generate(model, prompts, max_tokens, eos_id=text.eos_id, temperature=temperature, generator=gen)
    captions = {str(p): text.decode(ids).strip() for p, ids in zip(images, out)}
    for p, c in captions.items():
        print(f"{p}: {c}")
    return captions


def vqa(checkpoint: Positional[Path], image: Positional[Path], question: Positional[str],
        temperature: float = 0.0, max_tokens: int = 16, size: int = 64, seed: int = 0,
        device: str = "cpu") -> str:
    """Answer a question about an image.

    Args:
        checkpoint: checkpoint or run folder.
        image: image file.
        question: the question, e.g. "what colour is the circle?".
        temperature: sampling temperature (0: greedy).
        max_tokens: longest answer, in tokens.
        size: the image is resized to size x size, as in training.
        seed: sampling seed.
        device: cpu or cuda.
    """
    from gato.data.vl.sets import vqa_prompt

    if not question.strip():
        raise ValueError("the question is empty")
    model, text, gen = _setup(checkpoint, device, seed)
    prompt = image_prompt(_images([image], size)[0], text.encode(vqa_prompt(question)), model.cfg.token_map)
    ids = generate(model, [prompt], max_tokens, eos_id=text.eos_id, temperature=temperature, generator=gen)[0]
    answer = text.decode(ids).strip()
    print(answer)
    return answer


def chat(checkpoint: Positional[Path], prompt: str | None = None, temperature: float = 0.9,
         max_tokens: int = 128, seed: int = 0, device: str = "cpu") -> str:
    """Continue text with a trained model: one-shot with --prompt, else interactive (the whole
    conversation so far is the prompt of each reply; an empty line or Ctrl-D ends it).

    Args:
        checkpoint: checkpoint or run folder.
        prompt: text to continue once, then exit.
        temperature: sampling temperature (0: greedy).
        max_tokens: longest reply, in tokens.
        seed: sampling seed.
        device: cpu or cuda.
    """
    model, text, gen = _setup(checkpoint, device, seed)

    def reply(history: str) -> str:
        ids = generate(model, [text_prompt(text.encode(history), model.cfg.token_map)], max_tokens,
                       eos_id=text.eos_id, temperature=temperature, generator=gen)[0]
        return text.decode(ids)

    if prompt is not None:
        if not prompt.strip():
            raise ValueError("the prompt is empty")
        out = reply(prompt)
        print(prompt + out)
        return out
    history, out = "", ""
    print("chat with the model (empty line or Ctrl-D to quit)")
    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if not line.strip():
            break
        history += line + "\n"
        out = reply(history)
        print(out.strip())
        history += out + "\n"
    return out
