"""Mixture sampling: random context windows from many sources, collated into padded batches.

A control source yields a random window of one of its episodes; with probability
`prompt_prob` (0.25, paper) a prompt from another episode of the same task is prepended, half of
the time that episode's last tokens (goal conditioning), half a uniform window. With
`prompt_match` the prompt's episode carries the same text (BabyAI: the same mission) where
another such episode exists, as `gato eval --prompt-match` prompts (docs/quality.md). Prompt tokens
are conditioning only: no loss on them. With probability `start_prob` the window opens at the
episode's start (BOS and the first timesteps), the context every evaluation episode begins
with, which uniform windows of long episodes almost never show. Text and image-text sources yield windows of documents
and packed (image, caption) examples.

Row r of the batch of step s depends only on (seed, s, r): it is drawn with its own numpy
Generator seeded from SeedSequence([seed, s, r]), which also draws the training-time random
index of each image patch's position interval (handed to the model as the one-slot interval
[i, i+1), which its own training-time draw leaves unchanged). So the data cursor is just the
step, a rank draws only its own rows of the global batch and gets what one process would, and
worker processes can build batches of future steps ahead of time. "No sample seen twice" means
no (step, row) draw is made twice across ranks; two draws may still pick overlapping windows of
one episode, as random-window sampling does on one process.

Windows shorter than the context (short episodes and documents) are packed: further episodes
(documents, examples) of the same source follow from their start, each opened by BOS, so no
context is wasted on padding.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from gato.data.episode import Episode, TaskSpec, text_of
from gato.data.layout import EpisodeLayout, Sequence, document, image_text
from gato.tokenization.vocab import Kind, TokenMap


def _pack(first: Sequence, more, size: int) -> Sequence:
    """`first`, then `more(room)` sequences until `size` positions are filled."""
    parts, n = [first], len(first)
    while n < size:
        parts.append(more(size - n))
        n += len(parts[-1])
    return Sequence.concat(parts) if len(parts) > 1 else first


class Source(Protocol):
    name: str

    def sample(self, rng: np.random.Generator, size: int) -> Sequence:
        """A sequence of at most `size` positions."""


class ControlSource:
    def __init__(self, spec: TaskSpec, episodes: list[Episode], tm: TokenMap, text=None, *,
                 prompt_prob: float = 0.25, prompt_tokens: int = 256, max_local_positions: int = 512,
                 start_prob: float = 0.0, prompt_match: bool = False):
        if not episodes:
            raise ValueError(f"task {spec.name!r} has no episodes")
        self.name, self.episodes = spec.name, episodes
        self.layout = EpisodeLayout(spec, tm, text, max_local_positions)
        self.prompt_prob, self.prompt_tokens, self.start_prob = prompt_prob, prompt_tokens, start_prob
        self._lengths: dict[int, np.ndarray] = {}
        self.prompt_match = prompt_match
        self._same_text: dict[tuple[str, ...], np.ndarray] | None = None

    def lengths(self, i: int) -> np.ndarray:
        if i not in self._lengths:
            self._lengths[i] = self.layout.step_lengths(self.episodes[i])
        return self._lengths[i]

    def tokens_per_action(self) -> float:
        """Tokens per action token in this task's episodes (how thinly a window holds targets)."""
        ep = self.episodes[0]
        actions = len(self.layout.timestep(ep.observations[0], ep.actions[0]).loss_mask.nonzero()[0])
        return float(self.lengths(0).sum()) / (len(ep) * max(actions, 1))

    def _window(self, rng, i: int, size: int, at_end: bool = False, at_start: bool = False) -> Sequence:
        total = 1 + int(self.lengths(i).sum())
        start = max(0, total - size) if at_end else 0 if at_start else int(rng.integers(0, max(0, total - size) + 1))
        return self.layout.window(self.episodes[i], self.lengths(i), start, size)

    def _prompt_episode(self, rng, i: int) -> int:
        """Another episode of the task; with `prompt_match`, one with episode i's text if any."""
        if self.prompt_match:
            if self._same_text is None:
                groups: dict[tuple[str, ...], list[int]] = {}
                for k, ep in enumerate(self.episodes):
                    groups.setdefault(text_of(ep.observations[0]), []).append(k)
                self._same_text = {key: np.array(v) for key, v in groups.items()}
            same = self._same_text[text_of(self.episodes[i].observations[0])]
            if len(same) > 1:
                j = int(rng.integers(len(same) - 1))
                j += same[j] >= i  # same is sorted: skip episode i itself
                return int(same[j])
        j = int(rng.integers(len(self.episodes) - 1))
        return j + (j >= i)

    def _from_start(self, rng, size: int) -> Sequence:
        i = int(rng.integers(len(self.episodes)))
        return self.layout.window(self.episodes[i], self.lengths(i), 0, size)

    def sample(self, rng: np.random.Generator, size: int) -> Sequence:
        i = int(rng.integers(len(self.episodes)))
        use_prompt = len(self.episodes) > 1 and rng.random() < self.prompt_prob
        at_start = self.start_prob > 0 and rng.random() < self.start_prob
        if not use_prompt or self.prompt_tokens >= size:
            first = self._window(rng, i, size, at_start=at_start)
        else:
            j = self._prompt_episode(rng, i)
            prompt = self._window(rng, j, self.prompt_tokens, at_end=rng.random() < 0.5).without_loss()
            first = Sequence.concat([prompt, self._window(rng, i, size - len(prompt), at_start=at_start)])
        return _pack(first, lambda room: self._from_start(rng, room), size)


class DocumentSource:
    """Random windows of tokenized text documents."""

    def __init__(self, name: str, documents: list[np.ndarray], tm: TokenMap):
        if not documents:
            raise ValueError(f"text source {name!r} has no documents")
        self.name, self.docs, self.tm = name, documents, tm

    def _doc(self, rng) -> Sequence:
        return document(self.docs[int(rng.integers(len(self.docs)))], self.tm)

    def sample(self, rng, size):
        doc = self._doc(rng)
        start = int(rng.integers(0, max(0, len(doc) - size) + 1))
        return _pack(doc.slice(start, start + size), lambda room: self._doc(rng).slice(0, room), size)


class ImageTextSource:
    """(image, text ids) pairs, several per sequence (five in the paper), cropped to the context."""

    def __init__(self, name: str, pairs: list[tuple[np.ndarray, np.ndarray]], tm: TokenMap,
                 pairs_per_sequence: int = 5):
        if not pairs:
            raise ValueError(f"image-text source {name!r} has no examples")
        self.name, self.pairs, self.tm, self.k = name, pairs, tm, pairs_per_sequence

    def _example(self, rng) -> Sequence:
        picks = rng.integers(len(self.pairs), size=self.k)
        return image_text([self.pairs[int(i)] for i in picks], self.tm)

    def sample(self, rng, size):
        seq = self._example(rng)
        start = int(rng.integers(0, max(0, len(seq) - size) + 1))
        return _pack(seq.slice(start, start + size), lambda room: self._example(rng).slice(0, room), size)


@dataclass
class Batch:
    """Model inputs and loss mask, padded to (B, T). Patches of all rows, in row-major order."""

    ids: torch.Tensor  # (B, T) long; PAD id at image and padding positions
    kinds: torch.Tensor  # (B, T) uint8
    local_pos: torch.Tensor  # (B, T) long, -1 where none
    loss_mask: torch.Tensor  # (B, T) bool
    patches: torch.Tensor  # (N, 16, 16, 3) float32
    patch_pos: torch.Tensor  # (N, 4) int16
    targets: torch.Tensor  # (B, T) long: what each position's token should be (ids, or the label
    # where an executed action differs from the expert's: DAgger)

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in self._fields()))

    def pin_memory(self) -> "Batch":
        """Page-locked copies, for the data loader's asynchronous copies to the GPU."""
        return Batch(*(t.pin_memory() for t in self._fields()))

    def _fields(self) -> tuple:
        return self.ids, self.kinds, self.local_pos, self.loss_mask, self.patches, self.patch_pos, self.targets

    def inputs(self) -> tuple:
        return self.ids, self.kinds, self.local_pos, self.patches, self.patch_pos

    @property
    def num_tokens(self) -> int:
        return int((self.kinds != Kind.PAD).sum())


def collate(seqs: list[Sequence], length: int, tm: TokenMap) -> Batch:
    """Pad sequences at the end to `length`; padding is kind PAD, never a target."""
    B = len(seqs)
    ids = np.full((B, length), tm.pad, np.int64)
    kinds = np.full((B, length), Kind.PAD, np.uint8)
    local = np.full((B, length), -1, np.int64)
    mask = np.zeros((B, length), bool)
    for b, s in enumerate(seqs):
        n = len(s)
        if n > length:
            raise ValueError(f"sequence of {n} positions does not fit the context of {length}")
        ids[b, :n] = np.where(s.kinds == Kind.IMAGE, tm.pad, s.ids)
        kinds[b, :n], local[b, :n], mask[b, :n] = s.kinds, s.local_pos, s.loss_mask
    targets = ids  # what each position should predict: its own id, unless a label differs
    if any(s.targets is not None for s in seqs):
        targets = ids.copy()
        for b, s in enumerate(seqs):
            if s.targets is not None:
                targets[b, :len(s)] = np.where(s.kinds == Kind.IMAGE, tm.pad, s.targets)
    return Batch(torch.from_numpy(ids), torch.from_numpy(kinds), torch.from_numpy(local),
                 torch.from_numpy(mask),
                 torch.from_numpy(np.concatenate([s.patches for s in seqs])),
                 torch.from_numpy(np.concatenate([s.patch_pos for s in seqs])), torch.from_numpy(targets))


class Mixture:
    """Draws each row of a batch from a source chosen by weight; row r of step s is a function of
    (seed, s, r). The step of the next `sample_batch` is the cursor (state_dict)."""

    def __init__(self, sources: list[Source], tm: TokenMap, weights: list[float] | None = None,
                 seed: int = 0):
        if not sources:
            raise ValueError("a mixture needs at least one source")
        w = np.ones(len(sources)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(sources),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights {weights} must be {len(sources)} finite non-negative numbers, not all 0")
        self.sources, self.tm, self.weights = sources, tm, w / w.sum()
        self.seed, self.step = seed, 0

    def _draw(self, step: int, row: int) -> tuple[int, np.random.Generator]:
        """The source of row `row` of step `step`, and the generator that then draws its window."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, step, row])))
        return int(rng.choice(len(self.sources), p=self.weights)), rng

    def sample_row(self, step: int, row: int, length: int) -> Sequence:
        i, rng = self._draw(step, row)
        return _draw_patch_positions(self.sources[i].sample(rng, length), rng)

    def batch(self, step: int, rows: range, length: int) -> Batch:
        """Rows `rows` of the global batch of `step` (a rank's share, or a micro-batch)."""
        return collate([self.sample_row(step, r, length) for r in rows], length, self.tm)

    def sample_batch(self, batch_size: int, length: int) -> Batch:
        """The whole batch of the next step; advances the cursor."""
        out = self.batch(self.step, range(batch_size), length)
        self.step += 1
        return out

    def shares(self, rows: int, length: int, batch_size: int = 16) -> list[dict]:
        """Per source: its share of the first `rows` rows training draws (batches of `batch_size`)
        and its share of their loss targets. A loss averaged over targets gives each source its
        target share of the gradient, one averaged over rows its row share."""
        drawn = np.zeros(len(self.sources)), np.zeros(len(self.sources))
        for r in range(rows):
            i, rng = self._draw(r // batch_size, r % batch_size)
            drawn[0][i] += 1
            drawn[1][i] += int(self.sources[i].sample(rng, length).loss_mask[1:].sum())
        n, t = drawn
        return [{"source": s.name, "weight": float(w), "rows": float(n[i] / max(rows, 1)),
                 "targets_per_row": float(t[i] / n[i]) if n[i] else None,
                 "targets": float(t[i] / max(t.sum(), 1))} for i, (s, w) in enumerate(zip(self.sources, self.weights))]

    def fingerprint(self) -> str:
        """A hash of the sources' names, weights and contents: ranks compare it before training."""
        h = hashlib.sha256(repr((self.seed, self.weights.round(12).tolist())).encode())
        for s in self.sources:
            h.update(s.name.encode())
            for part in _content(s):
                h.update(np.ascontiguousarray(part).tobytes())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"seed", "step"}:
            raise ValueError(f"data cursor {sorted(state)} is not this gato's (expected seed and step: "
                             f"checkpoints from before per-row sampling cannot be resumed)")
        self.seed, self.step = int(state["seed"]), int(state["step"])


def _draw_patch_positions(seq: Sequence, rng: np.random.Generator) -> Sequence:
    """Replace each patch's [lo, hi) row and column intervals by a random one-slot interval inside them."""
    if not len(seq.patch_pos):
        return seq
    lo, hi = seq.patch_pos[:, 0::2].astype(np.int64), seq.patch_pos[:, 1::2].astype(np.int64)
    i = lo + (rng.random(lo.shape) * (hi - lo)).astype(np.int64)  # (P, 2): row, column
    pos = np.stack([i[:, 0], i[:, 0] + 1, i[:, 1], i[:, 1] + 1], axis=1).astype(seq.patch_pos.dtype)
    return dataclasses.replace(seq, patch_pos=pos)


def _content(source) -> list[np.ndarray]:
    """What identifies a source's data, cheaply: episode lengths and rewards, document and caption ids."""
    if isinstance(source, ControlSource):
        return [np.array([len(e.actions) for e in source.episodes])] + [e.rewards for e in source.episodes]
    if isinstance(source, DocumentSource):
        return list(source.docs)
    if isinstance(source, ImageTextSource):
        return [p[1] for p in source.pairs] + [np.array([p[2] if len(p) > 2 else 0 for p in source.pairs]),
                                                np.array([np.asarray(p[0]).shape for p in source.pairs])]
    return []
