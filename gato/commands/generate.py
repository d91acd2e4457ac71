"""`gato chat`, `gato caption` and `gato vqa`: a trained model's text, the same weights that act
(gato/generation.py holds the prompts and the generation loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tyro.conf import Positional

from gato.device import resolve_device
from gato.generation import generate, image_prompt, text_prompt
from gato.tokenization.images import PATCH, grid_shape

TRAINED_SIZE = 64  # the largest images of the offline vision-language sets (gato.data.vl.builders)


def _setup(checkpoint: Path, device: str, seed: int, max_tokens: int):
    """The checkpoint's model and tokenizer, and a seeded generator to sample with."""
    from gato.training.loading import load_checkpoint

    if max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {max_tokens}")
    device = resolve_device(device)
    model, _, text = load_checkpoint(Path(checkpoint), device)
    return model, text, torch.Generator(device=device).manual_seed(seed)


def _check_size(size: int | None) -> None:
    if size is not None and (size < PATCH or size % PATCH):
        raise ValueError(f"--size must be a multiple of {PATCH} (the patch size) and at least {PATCH}, got {size}")


def _images(paths, size: int | None) -> list[np.ndarray]:
    """The image files as arrays: size x size, or by default as in training, where images of at
    most TRAINED_SIZE px a side were used as they are (the digits at 32) and imported ones were
    resized to TRAINED_SIZE; a missing file is named."""
    from gato.data.vl.formats import load_image

    if not paths:
        raise ValueError("give at least one image file")
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"image file not found: {p}")
        image = load_image(Path(p), size)
        if size is None and max(image.shape[:2]) > TRAINED_SIZE:
            image = load_image(Path(p), TRAINED_SIZE)
        out.append(image)
    return out


def _check_fits(model, image: np.ndarray, given: int, max_tokens: int, size: int | None) -> None:
    """The whole image, the question and the answer must fit the model's context: past it the
    generation would drop the image's first patches."""
    rows, cols = grid_shape(*image.shape[:2])
    need = 1 + rows * cols + given + max_tokens  # BOS, patches, question, answer
    if need > model.cfg.context:
        what = f"--size {size}" if size else f"an image of {image.shape[1]}x{image.shape[0]} px"
        raise ValueError(f"{what} is {rows * cols} patches; with the prompt and --max-tokens {max_tokens} that is "
                         f"{need} tokens, more than the model's context of {model.cfg.context}: choose a smaller "
                         "--size or --max-tokens")


def caption(checkpoint: Positional[Path], images: Positional[tuple[Path, ...]], temperature: float = 0.9,
            max_tokens: int = 32, size: int | None = None, seed: int = 0, device: str = "auto") -> dict[str, str]:
    """Caption images with a trained model (temperature 0.9, as the paper samples captions).

    Args:
        checkpoint: checkpoint or run folder.
        images: image files (any format Pillow reads).
        temperature: sampling temperature (0: greedy).
        max_tokens: longest caption, in tokens.
        size: resize images to size x size (a multiple of 16). Default: as in training, an image
            of at most 64 px a side as it is, a larger one resized to 64 x 64.
        seed: sampling seed.
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
    """
    _check_size(size)
    model, text, gen = _setup(checkpoint, device, seed, max_tokens)
    tm = model.cfg.token_map
    pictures = _images(images, size)
    for im in pictures:
        _check_fits(model, im, 0, max_tokens, size)
    prompts = [image_prompt(im, np.zeros(0, np.int64), tm) for im in pictures]
    out = generate(model, prompts, max_tokens, eos_id=text.eos_id, temperature=temperature, generator=gen)
    captions = {str(p): text.decode(ids).strip() for p, ids in zip(images, out)}
    for p, c in captions.items():
        print(f"{p}: {c}")
    return captions


def vqa(checkpoint: Positional[Path], image: Positional[Path], question: Positional[str],
        temperature: float = 0.0, max_tokens: int = 16, size: int | None = None, seed: int = 0,
        device: str = "auto") -> str:
    """Answer a question about an image.

    Args:
        checkpoint: checkpoint or run folder.
        image: image file.
        question: the question, e.g. "what colour is the circle?".
        temperature: sampling temperature (0: greedy).
        max_tokens: longest answer, in tokens.
        size: resize the image to size x size (a multiple of 16). Default: as in training, an image
            of at most 64 px a side as it is, a larger one resized to 64 x 64.
        seed: sampling seed.
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
    """
    from gato.data.vl.sets import vqa_prompt

    if not question.strip():
        raise ValueError("the question is empty")
    _check_size(size)
    model, text, gen = _setup(checkpoint, device, seed, max_tokens)
    picture, asked = _images([image], size)[0], text.encode(vqa_prompt(question))
    _check_fits(model, picture, len(asked), max_tokens, size)
    prompt = image_prompt(picture, asked, model.cfg.token_map)
    ids = generate(model, [prompt], max_tokens, eos_id=text.eos_id, temperature=temperature, generator=gen)[0]
    answer = text.decode(ids).strip()
    print(answer)
    return answer


def chat(checkpoint: Positional[Path], prompt: str | None = None, temperature: float = 0.9,
         max_tokens: int = 128, seed: int = 0, device: str = "auto") -> str:
    """Continue text with a trained model: one-shot with --prompt, else interactive (the whole
    conversation so far is the prompt of each reply; an empty line or Ctrl-D ends it).

    Args:
        checkpoint: checkpoint or run folder.
        prompt: text to continue once, then exit.
        temperature: sampling temperature (0: greedy).
        max_tokens: longest reply, in tokens.
        seed: sampling seed.
        device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.
    """
    model, text, gen = _setup(checkpoint, device, seed, max_tokens)

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
