"""Sequence layout: episodes, documents and image-text examples as one flat stream of positions.

An episode is [BOS] then its timesteps, each [observation tokens, '|', action tokens]. Every
position carries its id (for an image patch: its slot in `patches`), its kind, its local
position (index within the timestep's observation; -1 elsewhere) and its loss mask (1 only on
text and action tokens). Documents are [BOS] + text; image-text examples are
[BOS] + (image patches, caption text)*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gato.data.episode import Episode, TaskSpec
from gato.tokenization import images, spaces
from gato.tokenization.spaces import Tokens
from gato.tokenization.vocab import Kind, TARGET_KINDS, TokenMap, as_action_kinds

_TARGETS = np.array(TARGET_KINDS, np.uint8)


@dataclass
class Sequence:
    ids: np.ndarray  # (T,) int64; IMAGE positions hold their patch slot
    kinds: np.ndarray  # (T,) uint8 Kind
    local_pos: np.ndarray  # (T,) int16, -1 where none
    loss_mask: np.ndarray  # (T,) bool
    patches: np.ndarray  # (P, 16, 16, 3) float32
    patch_pos: np.ndarray  # (P, 4) int16
    # (T,) int64 training targets where they differ from the input ids (an action executed in the
    # environment vs the expert's label for that state: DAgger, noisy demonstrations); None: ids.
    targets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def from_tokens(tok: Tokens, kinds: np.ndarray | None = None, local: bool = False,
                    loss: bool | None = None) -> "Sequence":
        kinds = tok.kinds if kinds is None else kinds
        ids = tok.ids.copy()
        img = kinds == Kind.IMAGE
        ids[img] = np.arange(int(img.sum()))
        n = len(ids)
        local_pos = np.arange(n, dtype=np.int16) if local else np.full(n, -1, np.int16)
        mask = np.isin(kinds, _TARGETS) if loss is None else np.full(n, loss, bool)
        return Sequence(ids, kinds, local_pos, mask, tok.patches, tok.patch_pos)

    @staticmethod
    def special(token_id: int, kind: Kind) -> "Sequence":
        return Sequence.from_tokens(Tokens.of([token_id], kind), loss=False)

    @staticmethod
    def concat(parts: list["Sequence"]) -> "Sequence":
        ids, offset = [], 0
        for p in parts:  # renumber patch slots
            i = p.ids.copy()
            img = p.kinds == Kind.IMAGE
            i[img] += offset
            offset += int(img.sum())
            ids.append(i)
        targets = None
        if any(p.targets is not None for p in parts):
            targets = np.concatenate([p.targets if p.targets is not None else i for p, i in zip(parts, ids)])
        return Sequence(np.concatenate(ids), np.concatenate([p.kinds for p in parts]),
                        np.concatenate([p.local_pos for p in parts]),
                        np.concatenate([p.loss_mask for p in parts]),
                        np.concatenate([p.patches for p in parts]),
                        np.concatenate([p.patch_pos for p in parts]), targets)

    def slice(self, start: int, stop: int) -> "Sequence":
        """Positions [start, stop), keeping only the patches they use."""
        kinds = self.kinds[start:stop]
        ids = self.ids[start:stop].copy()
        img = kinds == Kind.IMAGE
        slots = ids[img]
        ids[img] = np.arange(len(slots))
        return Sequence(ids, kinds, self.local_pos[start:stop], self.loss_mask[start:stop],
                        self.patches[slots], self.patch_pos[slots],
                        None if self.targets is None else self.targets[start:stop])

    def without_loss(self) -> "Sequence":
        return Sequence(self.ids, self.kinds, self.local_pos, np.zeros_like(self.loss_mask),
                        self.patches, self.patch_pos, self.targets)


class EpisodeLayout:
    """Lays out one task's timesteps, tokenizing only the steps a window needs."""

    def __init__(self, spec: TaskSpec, tm: TokenMap, text=None, max_local_positions: int = 512):
        self.spec, self.tm, self.text = spec, tm, text
        self.max_local = max_local_positions
        self.num_action_tokens = len(spaces.token_ranges(spec.action_space, tm)) \
            if "text" not in {spaces.modality(leaf) for _, leaf in spaces.leaves(spec.action_space)} else None

    def timestep(self, obs, act, where: str = "", executed=None) -> Sequence:
        """[observation, '|', action]. With `executed` (the action the environment really ran,
        when the label `act` differs: DAgger, noisy demonstrations) the action positions hold the
        executed action's tokens, so the history is what happened, and `targets` the label's."""
        o = spaces.encode(self.spec.observation_space, obs, self.tm, text=self.text,
                          name=f"{self.spec.name}: observation{where}")
        if len(o) > self.max_local:
            raise ValueError(f"{self.spec.name}: an observation has {len(o)} tokens; the model's "
                             f"local position table holds {self.max_local}")
        a = spaces.encode(self.spec.action_space, act, self.tm, role=spaces.ACTION, text=self.text,
                          name=f"{self.spec.name}: action{where}")
        action = Sequence.from_tokens(a, kinds=as_action_kinds(a.kinds))
        if executed is not None:
            e = spaces.encode(self.spec.action_space, executed, self.tm, role=spaces.ACTION, text=self.text,
                              name=f"{self.spec.name}: executed action{where}")
            if len(e) != len(a):
                raise ValueError(f"{self.spec.name}: executed action{where} has {len(e)} tokens, its label {len(a)}")
            action = Sequence.from_tokens(e, kinds=as_action_kinds(a.kinds))
            action.targets = a.ids.copy()
        return Sequence.concat([
            Sequence.from_tokens(o, local=True, loss=False),
            Sequence.special(self.tm.separator, Kind.SEPARATOR),
            action,
        ])

    def step_lengths(self, episode: Episode) -> np.ndarray:
        """Tokens per timestep, without tokenizing images."""
        act = None if self.num_action_tokens is None else self.num_action_tokens
        out = []
        for t, (o, a) in enumerate(zip(episode.observations, episode.actions)):
            try:
                out.append(spaces.token_count(self.spec.observation_space, o, self.text) + 1 +
                           (act if act is not None else spaces.token_count(self.spec.action_space, a, self.text)))
            except Exception:  # a malformed step: tokenizing it raises the error naming it
                out.append(len(self.timestep(o, a, f" at step {t}")))
        return np.array(out, np.int64)

    def steps(self, episode: Episode, first: int, last: int, with_bos: bool) -> Sequence:
        parts = [Sequence.special(self.tm.bos, Kind.BOS)] if with_bos else []
        ex = episode.executed
        parts += [self.timestep(episode.observations[t], episode.actions[t], f" at step {t}",
                                None if ex is None else ex[t]) for t in range(first, last)]
        return Sequence.concat(parts)

    def window(self, episode: Episode, lengths: np.ndarray, start: int, size: int) -> Sequence:
        """Positions [start, start+size) of the episode's stream [BOS] + timesteps."""
        ends = 1 + np.cumsum(lengths)  # stream offset where each step ends
        stop = min(start + size, int(ends[-1]))
        first = int(np.searchsorted(ends, start, side="right")) if start > 0 else 0
        last = int(np.searchsorted(ends, stop, side="left")) + 1
        origin = 0 if start == 0 else int(ends[first - 1]) if first > 0 else 1
        seq = self.steps(episode, first, min(last, len(lengths)), with_bos=start == 0)
        return seq.slice(start - origin, stop - origin)


def document(ids: np.ndarray, tm: TokenMap) -> Sequence:
    """A text document: [BOS] + text tokens, all text tokens targets."""
    ids = _text_ids(ids, tm, "document")
    return Sequence.concat([Sequence.special(tm.bos, Kind.BOS),
                            Sequence.from_tokens(Tokens.of(ids, Kind.TEXT), loss=True)])


def _text_ids(ids, tm: TokenMap, what: str) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= tm.text_vocab):
        raise ValueError(f"{what} has ids outside the text range [0, {tm.text_vocab})")
    return ids


def image_text(pairs: list[tuple], tm: TokenMap) -> Sequence:
    """An image-text example: [BOS] + (image patches, text)* ; the text is the target.

    A pair is (image, text ids) or (image, text ids, n): then the first n ids (a VQA question)
    are conditioning, like the image, and only the rest (the answer) is a target."""
    parts = [Sequence.special(tm.bos, Kind.BOS)]
    for k, (image, ids, *given) in enumerate(pairs):
        ids = _text_ids(ids, tm, f"image-text pair {k}")
        n = given[0] if given else 0
        patches = images.patchify(image)
        rows, cols = images.grid_shape(*np.asarray(image).shape[:2])
        tok = Tokens(np.full(len(patches), -1, np.int64), np.full(len(patches), Kind.IMAGE, np.uint8),
                     patches, images.patch_positions(rows, cols))
        parts += [Sequence.from_tokens(tok, loss=False),
                  Sequence.from_tokens(Tokens.of(ids[:n], Kind.TEXT), loss=False),
                  Sequence.from_tokens(Tokens.of(ids[n:], Kind.TEXT), loss=True)]
    return Sequence.concat(parts)
