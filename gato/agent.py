"""The agent: Gato acting in N environments of one task at once. It owns the acting state
(token history and KV cache); the model stays stateless.

Control loop (paper, section 3): [prompt] [BOS] then per step: observation tokens, '|', and
the action tokens sampled one at a time, each restricted to the ids that decode to a valid
action. One model forward per action token serves all N environments.

Window: the cache holds at most `context` tokens. When the next step would not fit, every row
keeps its newest `keep` tokens and the cache is recomputed from them (one forward). Between
two such re-encodings each logit equals a fresh forward pass over the row's window (the tokens
since its window start): exact, unlike sliding a cache token by token, whose deeper layers
remember tokens that have left. Re-encoding every `context - keep` tokens keeps it cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gato.data.episode import TaskSpec
from gato.data.layout import Sequence
from gato.data.sampling import collate
from gato.model import Gato, KVCache
from gato.tokenization import spaces
from gato.tokenization.vocab import Kind, as_action_kinds


class GatoAgent:
    def __init__(self, model: Gato, spec: TaskSpec, num_envs: int = 1, *, text=None,
                 prompt: Sequence | None = None, temperature: float = 0.0, keep: int | None = None,
                 seed: int = 0, device: str | torch.device = "cpu"):
        cfg = model.cfg
        self.model, self.spec, self.n, self.text = model.eval(), spec, num_envs, text
        self.tm = cfg.token_map
        self.ranges = _check_action_space(spec, self.tm)
        self.context, self.keep = cfg.context, keep or cfg.context // 2
        if prompt is not None and len(prompt) + 1 > self.keep:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the kept window of {self.keep}")
        self.prompt, self.temperature = prompt, temperature
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, rows: list[int] | None = None) -> None:
        """Start new episodes in `rows` (default all): their history and cache slots are cleared."""
        rows = range(self.n) if rows is None else rows
        if not hasattr(self, "history"):
            self.history: list[list[Sequence]] = [[] for _ in range(self.n)]
            self.window_start = [0] * self.n
            self.cache: KVCache | None = None
            self.pending: list[list[Sequence]] = [[] for _ in range(self.n)]
            self.steps = [0] * self.n
        for r in rows:
            start = [self.prompt] if self.prompt is not None else []
            self.history[r], self.window_start[r], self.steps[r] = [], 0, 0
            self.pending[r] = start + [Sequence.special(self.tm.bos, Kind.BOS)]
            if self.cache is not None:
                self.cache.valid[r] = False
                self.cache.next_pos[r] = 0

    def window(self, row: int) -> Sequence:
        """The tokens row `row` currently conditions on (for inspection and tests)."""
        if not self.history[row]:
            return Sequence.special(self.tm.pad, Kind.PAD).slice(0, 0)
        seq = Sequence.concat(self.history[row])
        return seq.slice(self.window_start[row], len(seq))

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, observations: list[Any]) -> list[Any]:
        """One action per environment for its observation (a list of N observations)."""
        if len(observations) != self.n:
            raise ValueError(f"expected {self.n} observations, got {len(observations)}")
        for r, obs in enumerate(observations):
            o = spaces.encode(self.spec.observation_space, obs, self.tm, text=self.text,
                              name=f"{self.spec.name}: observation of environment {r} at step {self.steps[r]}")
            if len(o) > self.model.cfg.max_local_positions:
                raise ValueError(f"{self.spec.name}: observations have {len(o)} tokens; the model's local "
                                 f"position table holds {self.model.cfg.max_local_positions}")
            self.steps[r] += 1
            self.pending[r] += [Sequence.from_tokens(o, local=True, loss=False),
                                Sequence.special(self.tm.separator, Kind.SEPARATOR)]
        logits = self._feed([Sequence.concat(p) for p in self.pending])
        self.pending = [[] for _ in range(self.n)]
        chosen = np.zeros((self.n, len(self.ranges)), np.int64)
        for i, (lo, hi) in enumerate(self.ranges):
            chosen[:, i] = self._sample(logits, lo, hi)
            if i + 1 < len(self.ranges):
                logits = self._feed([self._action_token(c) for c in chosen[:, i]])
        for r in range(self.n):  # the last action token enters the cache with the next observation
            self.pending[r].append(self._action_token(chosen[r, -1]))
        return [spaces.decode(self.spec.action_space, chosen[r], self.tm, text=self.text) for r in range(self.n)]

    def _action_token(self, token_id: int) -> Sequence:
        """One sampled action token as a sequence position (kind from its id range)."""
        lo, hi = self.tm.continuous_range()
        kind = Kind.CONTINUOUS_OBS if lo <= token_id < hi else Kind.DISCRETE_OBS
        return Sequence.from_tokens(spaces.Tokens.of([int(token_id)], kind),
                                    kinds=as_action_kinds(np.array([kind], np.uint8)))

    def _sample(self, logits: torch.Tensor, lo: int, hi: int) -> np.ndarray:
        z = logits[:, lo:hi].float()
        if not torch.isfinite(z).all():
            raise FloatingPointError(f"{self.spec.name}: the model produced non-finite logits; no action sent")
        if self.temperature <= 0:
            idx = z.argmax(-1)
        else:
            idx = torch.multinomial(torch.softmax(z / self.temperature, -1), 1, generator=self.gen)[:, 0]
        return (idx + lo).cpu().numpy()

    def _feed(self, seqs: list[Sequence]) -> torch.Tensor:
        """Append one sequence per row to the cache; logits (N, vocab) after each row's last token."""
        longest = max(len(s) for s in seqs)
        if self.cache is not None and self.cache.length + longest > self.context:
            self._reencode(extra=longest)
        for r, s in enumerate(seqs):
            self.history[r].append(s)
        batch = collate(seqs, longest, self.tm).to(self.device)
        valid = batch.kinds != Kind.PAD
        last = torch.zeros_like(valid)
        last[torch.arange(self.n, device=self.device), valid.long().sum(1) - 1] = True
        logits, self.cache = self.model(*batch.inputs(), cache=self.cache, use_cache=True, valid=valid,
                                        logits_at=last)  # only where the next token is chosen
        return logits

    def _reencode(self, extra: int) -> None:
        """Keep each row's newest tokens (leaving room for `extra`) and recompute the cache."""
        keep = min(self.keep, self.context - extra)
        windows = []
        for r in range(self.n):
            seq = Sequence.concat(self.history[r]) if self.history[r] else None
            if seq is None or len(seq) == 0:
                windows.append(None)
                continue
            start = max(self.window_start[r], len(seq) - keep)
            self.history[r], self.window_start[r] = [seq], start
            windows.append(seq.slice(start, len(seq)))
        longest = max((len(w) for w in windows if w is not None), default=0)
        if longest == 0:
            self.cache = None
            return
        empty = Sequence.special(self.tm.pad, Kind.PAD)
        batch = collate([w if w is not None else empty for w in windows], longest, self.tm).to(self.device)
        valid = batch.kinds != Kind.PAD
        _, self.cache = self.model(*batch.inputs(), use_cache=True, valid=valid)


def _check_action_space(spec: TaskSpec, tm) -> list[tuple[int, int]]:
    """Valid id ranges per action token; an error before any step if the token map cannot
    express every action of the space (more than 1024 values per token, text actions)."""
    try:
        ranges = spaces.token_ranges(spec.action_space, tm)
    except TypeError as e:
        raise ValueError(f"{spec.name}: the agent cannot act in {spec.action_space}: {e}") from None
    S = spaces.spaces
    leaves = [spec.action_space]
    while leaves:
        sp = leaves.pop()
        if isinstance(sp, (S.Dict, S.Tuple)):
            leaves += list(sp.spaces.values()) if isinstance(sp, S.Dict) else list(sp.spaces)
        elif isinstance(sp, (S.Discrete, S.MultiDiscrete)) and np.max(getattr(sp, "nvec", getattr(sp, "n", 0))) > tm.num_discrete:
            raise ValueError(f"{spec.name}: action space {sp} has more than the token map's "
                             f"{tm.num_discrete} discrete values per token")
    return ranges
