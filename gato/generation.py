"""Text generation: the same weights that act also chat, caption and answer questions.

Generation is the control loop with text in place of actions: the prompt (a document's start,
or an image and a question) is encoded once into the KV cache, then one token per forward, each
sampled among the text ids [0, V) only, so the model never emits an action or image token here.
It stops at the tokenizer's EOS (every training text ends with one) or after `max_new_tokens`.
Past the context, each row keeps its newest half and the cache is recomputed from it, as the
agent does (gato/agent.py), so every logit is that of a fresh forward over the row's window.
"""

from __future__ import annotations

import numpy as np
import torch

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
