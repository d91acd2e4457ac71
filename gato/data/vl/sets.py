"""Vision-language and text sets on disk, and the training sources made of them.

`gato collect vl` (or vl/<name>, text) has `collect_sets` write each set of the catalogue
(gato.data.vl.builders.SETS) to <root>/<name>/ as COCO captions, VQAv2 or JSONL files plus a
card.json (kind, splits, counts, licence, package versions); the card is written last, so a set
with a card is finished and a rerun skips it. `import_set` links a user's own COCO / VQAv2 /
text files into a set's folder and writes its card. Paths in cards and annotations stay inside
the set's folder (`inside`). Every reader goes through the card: `find_sets` lists the sets
under a root, `load_set` reads one split, and `vl_sources` turns them into training sources,
encoding VQA with `vqa_prompt` / `vqa_ids` exactly as generation does. Making the records is
gato.data.vl.builders' concern, the file formats gato.data.vl.formats'.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gato.data.vl.builders import QUESTION_TYPES, SETS, WORDNET
from gato.data.vl.formats import (Read, inside, most_common, read_coco, read_documents, read_json, read_vqa, write_coco,
                                  write_json, write_jsonl, write_vqa)
from gato.tokenization.vocab import TokenMap

__all__ = ["vqa_prompt", "vqa_ids", "is_set_target", "collect_sets", "import_set", "find_sets", "load_set",
           "vl_sources"]

FORMAT_VERSION = 1
KINDS = {"captions": "coco", "vqa": "vqav2", "text": "jsonl"}  # card kind -> file format


# ---------------------------------------------------------------- sets on disk

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
    """Register a user's own files as set `name` under root (nothing is copied): links to them in
    the set's folder, and its card naming those links (a card's paths never leave its folder).

    splits: per split, captions {"annotations": json, "images": folder}; vqa {"questions": json,
    "annotations": json (optional), "images": folder, "image_name": pattern (optional)}; text
    {"documents": [files]}. Images are resized to image_size x image_size when read (None: as they are).
    """
    need = {"captions": ("annotations", "images"), "vqa": ("questions", "images"), "text": ("documents",)}
    if kind not in need:
        raise ValueError(f"kind {kind!r} is not one of {sorted(need)}")
    folder, out = Path(root) / name, {}
    for split, paths in splits.items():
        for key in need[kind]:
            if key not in paths:
                raise ValueError(f"split {split!r} of a {kind} set needs {key!r}")
        targets = {k: paths[k] for k in ("annotations", "questions", "images") if k in paths}
        if kind == "text":
            targets |= {f"document{i}": p for i, p in enumerate(paths["documents"])}
        for p in targets.values():
            if not Path(p).exists():
                raise FileNotFoundError(f"{name}: {p} does not exist (split {split!r})")
        entry = {k: v for k, v in paths.items() if k not in targets and k != "documents"}
        for key, p in targets.items():  # the card names links inside the set's folder, never paths elsewhere
            link = folder / f"{split}-{key}{Path(p).suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(Path(p).resolve())
            if key.startswith("document"):
                entry.setdefault("documents", []).append(link.name)
            else:
                entry[key] = link.name
        out[split] = entry
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

    def at(key: str) -> Path:  # a path of the card, inside the set's folder
        return inside(folder, s[key], f"{folder / 'card.json'} ({split} {key})")

    if card["kind"] == "captions":
        return read_coco(at("annotations"), at("images"), size)
    if card["kind"] == "vqa":
        kw = {"image_name": s["image_name"]} if "image_name" in s else {}
        return read_vqa(at("questions"), at("annotations") if s.get("annotations") else None, at("images"), size=size,
                        **kw)
    return Read([d for p in s["documents"]
                 for d in read_documents(inside(folder, p, f"{folder / 'card.json'} ({split} documents)"))])


# ---------------------------------------------------------------- training sources

def vqa_prompt(question: str) -> str:
    """The text before a VQA answer, in training and generation alike."""
    return f"Q: {question.strip()} A:"


def vqa_ids(text, question: str, answer: str) -> tuple[np.ndarray, int]:
    """Text ids of a question and its answer (then EOS), and how many of them are the question:
    the prompt is encoded on its own, exactly as `gato vqa` encodes it before generating."""
    q = text.encode(vqa_prompt(question))
    return np.concatenate([q, text.encode(f" {answer.strip()}", eos=True)]), len(q)


def vl_sources(root: Path, tm: TokenMap, text, *, names: tuple[str, ...] = (), split: str = "train",
               image_size: int | None = None, verbose: bool = True) -> list:
    """Training sources of the sets under root (all, or `names`): DocumentSource for text sets,
    ImageTextSource for captions and VQA (the question conditions; its most common answer is the target)."""
    from gato.data.sampling import DocumentSource, ImageTextSource  # torch: not for `gato collect`

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
