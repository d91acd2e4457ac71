"""The token map: the one place that knows which id means what.

Layout (V = text vocabulary size of the preset, 32000 in the paper's presets):

    [0, V)              text (SentencePiece ids)
    [V, V+1024)         continuous values, one id per uniform bin of [-1, 1]
    [V+1024, V+2048)    discrete values 0..1023 (own range: no collision with text)
    V+2048              separator '|' between observation and action
    V+2049              padding (never attended to as a target)
    V+2050              begin of episode / document

Every other module asks a `TokenMap` for ids; none hard-codes one. See docs/tokens.md.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

import numpy as np

NUM_BINS = 1024  # continuous bins (paper)
NUM_DISCRETE = 1024  # discrete values per token (paper)


class Kind(enum.IntEnum):
    """What a position in a sequence holds. Stored per position as uint8."""

    PAD = 0
    BOS = 1  # begin of episode or document
    TEXT = 2  # text of a document or caption: a training target
    IMAGE = 3  # an image patch (embedded by the patch network, no id)
    TEXT_OBS = 4
    DISCRETE_OBS = 5
    CONTINUOUS_OBS = 6
    SEPARATOR = 7
    TEXT_ACTION = 8
    DISCRETE_ACTION = 9
    CONTINUOUS_ACTION = 10


OBSERVATION_KINDS = (Kind.TEXT_OBS, Kind.IMAGE, Kind.DISCRETE_OBS, Kind.CONTINUOUS_OBS)
ACTION_KINDS = (Kind.TEXT_ACTION, Kind.DISCRETE_ACTION, Kind.CONTINUOUS_ACTION)
TARGET_KINDS = (Kind.TEXT, *ACTION_KINDS)

# Loss is reported per group: text (documents and text actions), discrete and continuous actions.
LOSS_GROUPS: dict[str, tuple[Kind, ...]] = {
    "text": (Kind.TEXT, Kind.TEXT_ACTION),
    "discrete_action": (Kind.DISCRETE_ACTION,),
    "continuous_action": (Kind.CONTINUOUS_ACTION,),
}

_AS_ACTION = {Kind.TEXT_OBS: Kind.TEXT_ACTION, Kind.DISCRETE_OBS: Kind.DISCRETE_ACTION,
              Kind.CONTINUOUS_OBS: Kind.CONTINUOUS_ACTION}


def as_action_kinds(kinds: np.ndarray) -> np.ndarray:
    """Map observation kinds (as the space tokenizers emit them) to the action kinds."""
    out = kinds.copy()
    for obs, act in _AS_ACTION.items():
        out[kinds == obs] = act
    if (out == Kind.IMAGE).any():
        raise ValueError("image action spaces are not supported")
    return out


OBSERVATION_ORDERS = ("modality", "key")


@dataclass(frozen=True)
class TokenMap:
    """Id ranges of one vocabulary. `text_vocab` is V; everything else follows from it.

    `observation_order` is how a Dict observation's leaves follow each other: "modality" (the
    paper's [text, image patches, tensors], each group by key) or "key" (by key alone, what
    models saved before the field existed were trained with; gato.config.ModelConfig)."""

    text_vocab: int = 32000
    num_bins: int = NUM_BINS
    num_discrete: int = NUM_DISCRETE
    observation_order: str = "modality"

    def __post_init__(self):
        if self.text_vocab < 1 or self.num_bins < 2 or self.num_discrete < 2:
            raise ValueError(f"invalid token map {self}")
        if self.observation_order not in OBSERVATION_ORDERS:
            raise ValueError(f"observation_order must be one of {OBSERVATION_ORDERS}, got {self.observation_order!r}")

    @property
    def continuous_start(self) -> int:
        return self.text_vocab

    @property
    def discrete_start(self) -> int:
        return self.text_vocab + self.num_bins

    @property
    def separator(self) -> int:
        return self.discrete_start + self.num_discrete

    @property
    def pad(self) -> int:
        return self.separator + 1

    @property
    def bos(self) -> int:
        return self.separator + 2

    @property
    def size(self) -> int:
        """Number of ids: rows of the embedding table and of the output logits."""
        return self.separator + 3

    def text_range(self) -> tuple[int, int]:
        return 0, self.text_vocab

    def continuous_range(self) -> tuple[int, int]:
        return self.continuous_start, self.continuous_start + self.num_bins

    def discrete_range(self) -> tuple[int, int]:
        return self.discrete_start, self.discrete_start + self.num_discrete

    def describe(self, token_id: int) -> str:
        """Human-readable name of an id, for `gato inspect`."""
        i = int(token_id)
        if 0 <= i < self.text_vocab:
            return f"text:{i}"
        if self.continuous_start <= i < self.discrete_start:
            return f"bin:{i - self.continuous_start}"
        if self.discrete_start <= i < self.separator:
            return f"value:{i - self.discrete_start}"
        return {self.separator: "|", self.pad: "<pad>", self.bos: "<bos>"}.get(i, f"invalid:{i}")

    def to_dict(self) -> dict:
        return asdict(self) | {"size": self.size, "separator": self.separator,
                               "pad": self.pad, "bos": self.bos}

    @classmethod
    def from_dict(cls, d: dict) -> "TokenMap":
        tm = cls(text_vocab=int(d["text_vocab"]), num_bins=int(d["num_bins"]),
                 num_discrete=int(d["num_discrete"]), observation_order=d.get("observation_order", "key"))
        for key in ("size", "separator", "pad", "bos"):
            if key in d and d[key] != getattr(tm, key):
                raise ValueError(f"token map field {key!r} is {d[key]}, expected {getattr(tm, key)}")
        return tm
