"""The agent: Gato acting in N environments of one task at once. It owns the acting state
(the KV cache and a copy of the tokens in its slots); the model stays stateless.

Control loop (paper, section 3): [prompt] [BOS] then per step: observation tokens, '|', and
the action tokens sampled one at a time, each restricted to the ids that decode to a valid
action. One model forward per action token serves all N environments. The prompt is one
sequence for every episode, or a function of an episode's first observation that chooses it
(a demonstration of the same BabyAI mission: `gato.prompts.matched_prompts`).

Window: the cache holds at most `context` tokens. When the next step would not fit, every row
keeps its newest `keep` tokens and the cache is recomputed from them (one forward). Between
two such re-encodings each logit equals a fresh forward pass over the row's window (the tokens
since its window start): exact, unlike sliding a cache token by token, whose deeper layers
remember tokens that have left. Re-encoding every `context - keep` tokens keeps it cheap.

Speed (docs/benchmarks.md): the cache is preallocated and written in place; observations of all
N environments are tokenized in one vectorised call and actions decoded in one; a step whose
rows all have the same layout (no reset in it) is built as dense arrays with no per-row Python;
only the logits of each action token's valid ids are computed; action tokens go through the
model's purpose-written one-token step (`Gato.step`: no module calls, no masks, a rotation table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.spaces import Discrete, MultiDiscrete

from gato.data.episode import TaskSpec
from gato.data.layout import Sequence
from gato.data.sampling import collate
from gato.model import Gato, KVCache
from gato.tokenization import batched, images, spaces
from gato.tokenization.vocab import TARGET_KINDS, Kind, as_action_kinds


class GatoAgent:
    def __init__(self, model: Gato, spec: TaskSpec, num_envs: int = 1, *, text=None,
                 prompt: Sequence | Callable[[Any], Sequence | None] | None = None, temperature: float = 0.0,
                 keep: int | None = None,
                 seed: int = 0, device: str | torch.device = "cpu", decode: str = "argmax",
                 discrete_temperature: float | None = None):
        cfg = model.cfg
        self.model, self.spec, self.n, self.text = model.eval(), spec, num_envs, text
        self.tm = cfg.token_map
        self.ranges = check_action_space(spec, self.tm)
        lo, hi = self.tm.continuous_range()
        self.action_kinds = as_action_kinds(np.array(
            [Kind.CONTINUOUS_OBS if lo <= a < hi else Kind.DISCRETE_OBS for a, _ in self.ranges], np.uint8))
        self.context, self.keep = cfg.context, keep or cfg.context // 2
        if isinstance(prompt, Sequence):
            self._check_prompt(prompt)
        if decode not in ("argmax", "median"):
            raise ValueError(f"decode must be argmax or median, got {decode!r}")
        self.prompt, self.decode = prompt, decode
        self.continuous = [lo <= a < hi for a, _ in self.ranges]
        # per action token: `discrete_temperature` (when given) for discrete tokens, `temperature` otherwise
        self.temperatures = [temperature if c or discrete_temperature is None else discrete_temperature
                             for c in self.continuous]
        if min(self.temperatures) < 0 or not all(math.isfinite(t) for t in self.temperatures):
            raise ValueError(f"temperatures must be finite and >= 0, got {temperature} and {discrete_temperature}")
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        dtype = next(model.parameters()).dtype
        self.cache = KVCache.empty(cfg, num_envs, self.context, self.device, dtype)
        # The tokens in the cache's slots, on the host: each row's window for re-encoding and
        # inspection. IMAGE slots hold an index into self.patches.
        shape = (num_envs, self.context)
        self.slot_ids, self.slot_kinds = np.zeros(shape, np.int64), np.zeros(shape, np.uint8)
        self.slot_local, self.slot_loss = np.zeros(shape, np.int16), np.zeros(shape, bool)
        self.patches: list[tuple[np.ndarray, np.ndarray]] = []  # (patches, patch_pos) per feed with images
        self.num_patches = 0
        self.unrecorded: list[tuple[int, _Step]] = []  # (first slot, step) not yet in the mirror
        self.templates: dict[int, tuple] = {}  # per observation length: the dense step's fixed arrays
        self.token_steps: dict[int, _Step] = {}  # per action token index: its fixed arrays
        self.opening: list[Sequence | None] = [None] * num_envs
        self.last_action = np.full(num_envs, -1, np.int64)
        self.steps = [0] * num_envs
        self.reset()

    # ------------------------------------------------------------------ state
    @torch.inference_mode()  # the cache's tensors are made in inference mode by `act`
    def reset(self, rows: list[int] | None = None, seeds: list | None = None) -> None:
        """Start new episodes in `rows` (default all): their cache slots are masked, their
        positions restart at 0, and their next step opens with [prompt] BOS. (`seeds`, the
        environments' reset seeds, are not needed: greedy acting is deterministic and sampling
        draws from the agent's own generator.)"""
        rows = list(range(self.n)) if rows is None else list(rows)
        fixed = self.prompt if isinstance(self.prompt, Sequence) else None  # a callable: chosen in `act`
        opening = Sequence.concat(([fixed] if fixed is not None else []) +
                                  [Sequence.special(self.tm.bos, Kind.BOS)])
        for r in rows:
            self.opening[r], self.last_action[r], self.steps[r] = opening, -1, 0
        self.cache.valid_buf[rows] = False
        self.cache.next_pos[rows] = 0

    def _check_prompt(self, prompt: Sequence) -> None:
        if len(prompt) + 1 > self.keep:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the kept window of {self.keep}")

    def window(self, row: int) -> Sequence:
        """The tokens row `row` currently conditions on (for inspection and tests)."""
        self._flush()
        idx = np.flatnonzero(self.cache.valid[row].cpu().numpy())
        return self._tokens(row, idx)

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()  # less per-op bookkeeping than no_grad: acting runs op by op
    def act(self, observations: list[Any], forced: list[Any] | None = None) -> list[Any]:
        """One action per environment for its observation (a list of N observations).

        `forced[r]`, where not None, is the action row r executes instead of its own (DAgger's
        expert mixture): its tokens, not the sampled ones, enter the cache, so the history the
        agent conditions on is the one that happened. Returned for such rows: the forced action."""
        if len(observations) != self.n:
            raise ValueError(f"expected {self.n} observations, got {len(observations)}")
        force = self._forced_tokens(forced)
        obs = batched.encode_batch(self.spec.observation_space, observations, self.tm)
        rows = None if obs is not None else [  # the per-row path names a bad observation
            spaces.encode(self.spec.observation_space, o, self.tm, text=self.text,
                          name=f"{self.spec.name}: observation of environment {r} at step {self.steps[r]}")
            for r, o in enumerate(observations)]
        longest = obs.ids.shape[1] if obs is not None else max(len(t) for t in rows)
        if longest > self.model.cfg.max_local_positions:
            raise ValueError(f"{self.spec.name}: observations have {longest} tokens; the model's local "
                             f"position table holds {self.model.cfg.max_local_positions}")
        if callable(self.prompt):  # per-episode prompts: chosen from each new episode's first observation
            for r in (r for r in range(self.n) if self.steps[r] == 0):
                if (p := self.prompt(observations[r])) is not None:
                    self._check_prompt(p)
                    self.opening[r] = Sequence.concat([p, self.opening[r]])
        self.steps = [s + 1 for s in self.steps]
        if obs is not None and all(o is None for o in self.opening):
            logits = self._feed(self._dense_step(obs), vocab=self.ranges[0])
        else:
            seqs = [Sequence.concat([self.opening[r] if self.opening[r] is not None else self._action(r),
                                     Sequence.from_tokens(obs.row(r) if obs is not None else rows[r],
                                                          local=True, loss=False),
                                     Sequence.special(self.tm.separator, Kind.SEPARATOR)])
                    for r in range(self.n)]
            logits = self._feed(self._padded_step(seqs, self.tm), vocab=self.ranges[0])
            self.opening = [None] * self.n
        chosen, finite = [], []
        for i, (lo, hi) in enumerate(self.ranges):
            token, ok = self._sample(logits, lo, self.temperatures[i],
                                     median=self.decode == "median" and self.continuous[i])
            if force is not None:
                token = torch.where(force[0], force[1][:, i], token)
            chosen.append(token)
            finite.append(ok)
            if i + 1 < len(self.ranges):
                logits = self._feed_token(token, i, vocab=self.ranges[i + 1])
        if not bool(torch.stack(finite).all()):  # one check per step, before any action leaves
            raise FloatingPointError(f"{self.spec.name}: the model produced non-finite logits; no action sent")
        chosen_ids = torch.stack(chosen, 1).cpu().numpy()  # (N, action tokens)
        self._flush()
        self.last_action = chosen_ids[:, -1].copy()  # enters the cache with the next observation
        actions = batched.decode_batch(self.spec.action_space, chosen_ids, self.tm)
        return actions if forced is None else [a if f is None else f for a, f in zip(actions, forced)]

    def _forced_tokens(self, forced: list[Any] | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(mask (N,), ids (N, action tokens)) of the forced rows' actions, on the device."""
        if forced is None or all(f is None for f in forced):
            return None
        if len(forced) != self.n:
            raise ValueError(f"expected {self.n} forced actions (None where not forced), got {len(forced)}")
        ids = np.zeros((self.n, len(self.ranges)), np.int64)
        for r, a in enumerate(forced):
            if a is not None:
                ids[r] = spaces.encode(self.spec.action_space, a, self.tm, role=spaces.ACTION, text=self.text,
                                       name=f"{self.spec.name}: forced action of environment {r}").ids
        mask = torch.tensor([f is not None for f in forced], device=self.device)
        return mask, torch.from_numpy(ids).to(self.device)

    def _sample(self, logits: torch.Tensor, lo: int, temperature: float,
                median: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N,) from logits (N, hi - lo) of the valid ids, and whether all were finite.

        Greedy acting takes the most likely id, or with `median` (continuous bins, which are
        ordered) the median of the predicted distribution: robust where the mass is spread over
        neighbouring bins, as a model trained on Gaussian-histogram targets predicts."""
        z = logits.float()
        finite = torch.isfinite(z.amax(-1)).all()  # NaN and +inf reach the max
        if temperature <= 0 and median:
            cdf = torch.softmax(z, -1).cumsum(-1)
            return (cdf < 0.5).sum(-1).clamp(max=z.shape[-1] - 1) + lo, finite
        if temperature <= 0:
            return z.argmax(-1) + lo, finite
        if not bool(finite):  # a distribution needs finite logits
            raise FloatingPointError(f"{self.spec.name}: the model produced non-finite logits; no action sent")
        return torch.multinomial(torch.softmax(z / temperature, -1), 1, generator=self.gen)[:, 0] + lo, finite

    # ------------------------------------------------------------------ a step's input
    def _dense_step(self, obs: batched.BatchTokens) -> _Step:
        """[last action token, observation, '|'] for every row: one (N, L + 2) array, no padding."""
        N, L = obs.ids.shape
        if L not in self.templates:  # the same layout every step
            kinds = np.concatenate([[0], obs.kinds, [Kind.SEPARATOR]]).astype(np.uint8)
            kinds = np.repeat(kinds[None], N, 0)
            kinds[:, 0] = self.action_kinds[-1]
            local = np.repeat(np.concatenate([[-1], np.arange(L), [-1]])[None], N, 0).astype(np.int16)
            self.templates[L] = (kinds, local, np.isin(kinds, _TARGETS), np.flatnonzero(kinds[0] == Kind.IMAGE),
                                 np.tile(obs.patch_pos, (N, 1)))
        kinds, local, loss, img, patch_pos = self.templates[L]
        ids = np.empty((N, L + 2), np.int64)
        ids[:, 0], ids[:, 1:-1], ids[:, -1] = self.last_action, obs.ids, self.tm.separator
        ids[:, img] = self.tm.pad
        patches = obs.patches.reshape(-1, *obs.patches.shape[2:])
        return _Step(ids, kinds, local, patches if len(img) else None, patch_pos if len(img) else None, None, loss)

    @staticmethod
    def _padded_step(seqs: list[Sequence], tm) -> _Step:
        """Rows of different lengths (after a reset, or windows to re-encode), padded at the end."""
        b = collate(seqs, max(len(s) for s in seqs), tm)
        return _Step(b.ids.numpy(), b.kinds.numpy(), b.local_pos.numpy(), b.patches.numpy(), b.patch_pos.numpy(),
                     b.kinds.numpy() != Kind.PAD, b.loss_mask.numpy())

    def _feed_token(self, token: torch.Tensor, i: int, *, vocab: tuple[int, int]) -> torch.Tensor:
        """Append action token i (N,) of every row (its ids stay on the device) with the model's
        one-token step; logits (N, hi - lo) of the next token's valid ids."""
        if self.cache.length + 1 > self.context:
            self._reencode(extra=1)
        if i not in self.token_steps:
            self.token_steps[i] = _Step(None, np.full((self.n, 1), self.action_kinds[i], np.uint8),
                                        np.full((self.n, 1), -1, np.int16), None, None, None, np.ones((self.n, 1), bool))
        self.unrecorded.append((self.cache.length, self.token_steps[i]._replace(ids=token[:, None])))
        logits, self.cache = self.model.step(token, self.cache, vocab)
        return logits

    def _action(self, r: int) -> Sequence:
        """Row r's previous last action token, as a sequence position."""
        tok = spaces.Tokens.of(self.last_action[r:r + 1], Kind.DISCRETE_OBS)
        return Sequence.from_tokens(tok, kinds=self.action_kinds[-1:])

    # ------------------------------------------------------------------ the cache
    def _feed(self, step: _Step, *, vocab: tuple[int, int]) -> torch.Tensor:
        """Append a step's (N, T) positions to the cache; logits (N, hi - lo) of ids [lo, hi) =
        `vocab` after each row's last real position."""
        N, T = step.kinds.shape
        if T > self.context:
            raise ValueError(f"{self.spec.name}: a step of {T} tokens does not fit the context of {self.context}")
        if self.cache.length + T > self.context:
            self._reencode(extra=T)
        self.unrecorded.append((self.cache.length, step))
        last = step.valid.sum(1) - 1 if step.valid is not None else np.full(N, T - 1)
        return self._forward(step, last, vocab)

    def _forward(self, step: _Step, last: np.ndarray, vocab: tuple[int, int]) -> torch.Tensor:
        def put(a):
            return None if a is None else (a if torch.is_tensor(a) else torch.from_numpy(a)).to(self.device)

        logits, self.cache = self.model(
            put(step.ids), put(step.kinds), put(step.local.astype(np.int64)), put(step.patches), put(step.patch_pos),
            cache=self.cache, valid=put(step.valid), logits_at=put(last), vocab=vocab)
        return logits

    def _flush(self) -> None:
        """Copy the tokens of fed slots to the host mirror (sampled action ids are read back here)."""
        for n, step in self.unrecorded:
            T = step.kinds.shape[1]
            ids = step.ids.cpu().numpy() if torch.is_tensor(step.ids) else step.ids.copy()
            img = step.kinds == Kind.IMAGE
            if img.any():
                ids[img] = self.num_patches + np.arange(int(img.sum()))  # row-major: the patches' order
                self.patches.append((step.patches, step.patch_pos))
                self.num_patches += len(step.patches)
            self.slot_ids[:, n:n + T], self.slot_kinds[:, n:n + T] = ids, step.kinds
            self.slot_local[:, n:n + T], self.slot_loss[:, n:n + T] = step.local, step.loss
        self.unrecorded = []

    def _tokens(self, row: int, idx: np.ndarray) -> Sequence:
        """Row `row`'s tokens in slots `idx`, as a Sequence with its own patches."""
        kinds, ids = self.slot_kinds[row, idx], self.slot_ids[row, idx].copy()
        img = kinds == Kind.IMAGE
        slots = ids[img]
        ids[img] = np.arange(len(slots))
        patches = np.zeros((0, images.PATCH, images.PATCH, images.CHANNELS), np.float32)
        patch_pos = np.zeros((0, 4), np.int16)
        if self.patches:
            patches = np.concatenate([p for p, _ in self.patches])[slots]
            patch_pos = np.concatenate([q for _, q in self.patches])[slots]
        return Sequence(ids, kinds, self.slot_local[row, idx], self.slot_loss[row, idx], patches, patch_pos)

    def _reencode(self, extra: int) -> None:
        """Keep each row's newest tokens (leaving room for `extra`) and recompute the cache."""
        self._flush()
        keep = max(0, min(self.keep, self.context - extra))
        slots = [np.flatnonzero(v) for v in self.cache.valid.cpu().numpy()]
        windows = [self._tokens(r, idx[max(0, len(idx) - keep):]) for r, idx in enumerate(slots)]
        self.cache = self.cache.cleared()
        self.patches, self.num_patches = [], 0
        if max(len(w) for w in windows) == 0:
            return
        step = self._padded_step(windows, self.tm)
        self.unrecorded.append((0, step))
        self._flush()
        self._forward(step, np.zeros(self.n, np.int64), vocab=(0, 1))  # only the cache is wanted


class _Step(NamedTuple):
    """(N, T) positions fed to the cache at once."""

    ids: np.ndarray | torch.Tensor  # (N, T) int64; PAD at image positions
    kinds: np.ndarray  # (N, T) uint8
    local: np.ndarray  # (N, T) int16, -1 where none
    patches: np.ndarray | None  # (P, 16, 16, 3) in row-major order of the image positions
    patch_pos: np.ndarray | None  # (P, 4)
    valid: np.ndarray | None  # (N, T) bool; None: no padding
    loss: np.ndarray  # (N, T) bool, kept with the tokens for `window`


_TARGETS = np.array(TARGET_KINDS, np.uint8)


def check_action_space(spec: TaskSpec, tm) -> list[tuple[int, int]]:
    """Valid id ranges per action token; an error before any step if the token map cannot
    express every action of the space (more than 1024 values per token, in a Discrete,
    MultiDiscrete or integer Box; text actions)."""
    from gymnasium.spaces import Box

    try:
        ranges = spaces.token_ranges(spec.action_space, tm)
    except TypeError as e:
        raise ValueError(f"{spec.name}: the agent cannot act in {spec.action_space}: {e}") from None
    for _, leaf in spaces.leaves(spec.action_space):
        n = getattr(leaf, "nvec", getattr(leaf, "n", 0)) if isinstance(leaf, (Discrete, MultiDiscrete)) else 0
        if isinstance(leaf, Box) and spaces.is_integer_box(leaf):  # float64: int64 bounds overflow
            n = np.asarray(leaf.high, np.float64) - np.asarray(leaf.low, np.float64) + 1
        if np.max(n) > tm.num_discrete:
            raise ValueError(f"{spec.name}: action space {leaf} has more than the token map's "
                             f"{tm.num_discrete} discrete values per token")
    return ranges
