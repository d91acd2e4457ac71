"""Small generated data of every modality, for the demo, tests and benchmarks.

Three toy control tasks whose expert action is a fixed function of the observation (so a model
can learn them in minutes), text documents from the tokenizer's corpus, and captioned images of
coloured squares. Deterministic for a given seed; nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from gato.data.episode import Episode, TaskSpec
from gato.data.sampling import ControlSource, DocumentSource, ImageTextSource
from gato.tokenization.vocab import TokenMap

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230)}
QUADRANTS = ["top left", "top right", "bottom left", "bottom right"]

MAX_TASK = TaskSpec("toy/max-cell", spaces.Box(0, 7, (6,), np.int64), spaces.Discrete(6))
TRACK_TASK = TaskSpec("toy/track", spaces.Box(-np.inf, np.inf, (3,), np.float32),
                      spaces.Box(-1.0, 1.0, (2,), np.float32))
SQUARE_TASK = TaskSpec("toy/find-square",
                       spaces.Dict({"image": spaces.Box(0, 255, (32, 32, 3), np.uint8),
                                    "mission": spaces.Text(64)}),
                       spaces.Discrete(4))


def square_image(rng: np.random.Generator, colour: str, quadrant: int) -> np.ndarray:
    """A 32x32 RGB image with one 8x8 square of `colour` inside `quadrant`."""
    img = np.full((32, 32, 3), 20, np.uint8)
    r0, c0 = 16 * (quadrant // 2), 16 * (quadrant % 2)
    r, c = r0 + int(rng.integers(0, 9)), c0 + int(rng.integers(0, 9))
    img[r:r + 8, c:c + 8] = COLOURS[colour]
    return img


def _episode(rng, task: TaskSpec, steps: int) -> Episode:
    obs, act = [], []
    for _ in range(steps):
        if task is MAX_TASK:
            o = rng.integers(0, 8, size=6)
            a = int(np.argmax(o))
        elif task is TRACK_TASK:
            o = rng.normal(0, 2, size=3).astype(np.float32)
            a = np.clip(o[:2] / 2, -1, 1).astype(np.float32)
        else:
            colour, q = str(rng.choice(list(COLOURS))), int(rng.integers(4))
            o = {"image": square_image(rng, colour, q), "mission": f"go to the {colour} square"}
            a = q
        obs.append(o)
        act.append(a)
    return Episode(obs, act, np.ones(steps, np.float32))


def episodes(task: TaskSpec, n: int, seed: int = 0, steps: int = 40) -> list[Episode]:
    rng = np.random.default_rng(seed)
    return [_episode(rng, task, steps) for _ in range(n)]


def captions(n: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        colour, q = str(rng.choice(list(COLOURS))), int(rng.integers(4))
        out.append((square_image(rng, colour, q), f"a {colour} square at the {QUADRANTS[q]}"))
    return out


def sources(tm: TokenMap, text, seed: int = 0, episodes_per_task: int = 16,
            prompt_tokens: int = 256, max_local_positions: int = 512) -> list:
    """One source per modality: three control tasks, text documents, image captions."""
    from gato.tokenization.text import build_default_corpus

    control = [ControlSource(t, episodes(t, episodes_per_task, seed + i), tm, text,
                             prompt_tokens=prompt_tokens, max_local_positions=max_local_positions)
               for i, t in enumerate((MAX_TASK, TRACK_TASK, SQUARE_TASK))]
    docs = [text.encode(d, eos=True) for d in build_default_corpus()[:200]]
    pairs = [(img, text.encode(c, eos=True)) for img, c in captions(200, seed)]
    return control + [DocumentSource("text/stdlib", docs, tm),
                      ImageTextSource("caption/squares", pairs, tm)]
