"""Text generation: the same weights that act also chat, caption and answer questions.

Generation is the control loop with text in place of actions: the prompt (a document's start,
or an image and a question) is encoded once into the KV cache, then one token per forward, each
sampled among the text ids [0, V) only, so the model never emits an action or image token here.
It stops at the tokenizer's EOS (every training text ends with one) or after `max_new_tokens`.
Past the context, each row keeps its newest half and the cache is recomputed from it, as the
agent does (gato/agent.py), so every logit is that of a fresh forward over the row's window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tyro.conf import Positional

from gato.data.layout import Sequence, document, image_text
from gato.data.sampling import collate
from gato.model import Gato, KVCache
from gato.tokenization.spaces import Tokens
from gato.tokenization.vocab import Kind


def text_prompt(ids: np.ndarray, tm) -> Sequence:
    """[BOS] + text: the start of a document to continue."""
    return document(ids, tm)


def image_prompt(image: np.ndarray, ids: np.ndarray, tm) -> Sequence:
    """[BOS] + image patches + text (empty for a caption, the question for VQA)."""
    return image_text([(image, ids)], tm)


@torch.inference_mode()
def generate(model: Gato, prompts: list[Sequence], max_new_tokens: int, *, eos_id: int | None = None,
             temperature: float = 0.0, generator: torch.Generator | None = None,
             use_cache: bool = True) -> list[np.ndarray]:
    """Text ids generated after each prompt (EOS not included), all rows in one batch.

    `use_cache=False` recomputes the whole window for every token: the baseline of
    `gato bench generate` and the reference of the tests."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and no prompt may be empty")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    model.eval()
    ctx, V = model.cfg.context, model.cfg.text_vocab
    device = next(model.parameters()).device
    seqs = [p.slice(max(0, len(p) - (ctx - 1)), len(p)) for p in prompts]  # room for one new token
    out: list[list[int]] = [[] for _ in prompts]
    sampled: list[np.ndarray] = []  # each step's tokens (B,), EOS and after included
    done = np.zeros(len(prompts), bool)
    logits, cache = _forward(model, seqs, device, use_cache)
    for step in range(max_new_tokens):
        tokens = _sample(logits, temperature, generator)
        sampled.append(tokens)
        for r, t in enumerate(tokens):
            if not done[r]:
                done[r] = t == eos_id
                if not done[r]:
                    out[r].append(int(t))
        if done.all() or step == max_new_tokens - 1:
            break
        if not use_cache or cache.length + 1 > ctx:
            # Recompute from the prompt window and the tokens since: all of the context (the
            # baseline), or each row's newest half (sliding: then the cache goes on from there).
            keep = ctx if not use_cache else ctx // 2
            seqs = [_extend(s, [t[r] for t in sampled], keep) for r, s in enumerate(seqs)]
            sampled = []
            logits, new_cache = _forward(model, seqs, device, use_cache)
            cache = new_cache if use_cache else None
        else:
            logits, cache = model.step(torch.as_tensor(tokens, device=device), cache, vocab=(0, V))
    return [np.asarray(o, np.int64) for o in out]


def _extend(seq: Sequence, tokens: list, keep: int) -> Sequence:
    """`seq` followed by text `tokens`, its newest `keep` positions."""
    s = Sequence.concat([seq, Sequence.from_tokens(Tokens.of(np.asarray(tokens, np.int64), Kind.TEXT))])
    return s.slice(max(0, len(s) - keep), len(s))


def _forward(model: Gato, seqs: list[Sequence], device, use_cache: bool):
    """Text logits (B, V) after each row's last token, rows padded at the end; and the cache
    (preallocated for the whole context, so generating a token copies nothing)."""
    longest = max(len(s) for s in seqs)
    batch = collate(seqs, longest, model.cfg.token_map).to(device)
    valid = batch.kinds != Kind.PAD
    cache = KVCache.empty(model.cfg, len(seqs), model.cfg.context, device) if use_cache else None
    return model(*batch.inputs(), cache=cache, use_cache=use_cache, valid=valid,
                 logits_at=valid.long().sum(1) - 1, vocab=(0, model.cfg.text_vocab))


def _sample(logits: torch.Tensor, temperature: float, generator) -> np.ndarray:
    z = logits.float()
    if not torch.isfinite(z.amax(-1)).all():  # NaN and +inf reach the max
        raise FloatingPointError("the model produced non-finite logits")
    if temperature <= 0:
        return z.argmax(-1).cpu().numpy()
    probs = torch.softmax(z / temperature, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0].cpu().numpy()


# ------------------------------------------------------------------ commands

def _setup(checkpoint: Path, device: str, seed: int):
    from gato.training.trainer import load_checkpoint

    model, _, text = load_checkpoint(Path(checkpoint), device)
    return model, text, torch.Generator(device=device).manual_seed(seed)


def _images(paths, size: int) -> list[np.ndarray]:
    from gato.data.vl_formats import load_image

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
    from gato.data.vision_language import vqa_prompt

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
