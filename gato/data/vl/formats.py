"""Vision-language data in the standard formats on disk: COCO captions, VQAv2, plain text / JSONL.

Readers take the paths a user points at, so their own data loads the way ours does. Bad input
fails with the file named: an unreadable or non-image file, JSON without the format's keys,
text that is not UTF-8 (with line and byte). Annotations that reference a missing image file are
not an error: those records are skipped and the missing file names returned, so a partly
downloaded COCO still trains. Writers write every file atomically (tmp file + os.replace).

COCO captions: annotations JSON {"images": [{id, file_name, height, width}],
"annotations": [{id, image_id, caption}]} and an image folder holding each `file_name`.
VQAv2: questions JSON {"data_subtype", "questions": [{image_id, question, question_id}]} and
annotations JSON {"annotations": [{question_id, image_id, question_type, answer_type,
multiple_choice_answer, answers: [{answer, answer_confidence, answer_id}]}]}; the image of
`image_id` is `image_name.format(data_subtype=..., image_id=...)` in the image folder
(VQAv2's own naming: COCO_train2014_000000000009.jpg). Text: a `.jsonl` file holds one
{"text": ...} document per line; any other file is one document.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gato import io
from gato.io import atomic_write

VQA_IMAGE_NAME = "COCO_{data_subtype}_{image_id:012d}.jpg"  # VQAv2's images are COCO's
OUR_IMAGE_NAME = "COCO_{data_subtype}_{image_id:012d}.png"  # ours: lossless, tiny images
ANSWERS_PER_QUESTION = 10  # VQAv2 asks ten people; VQA accuracy counts agreeing answers over 3


@dataclass
class Caption:
    image: np.ndarray  # (H, W, 3) uint8
    text: str


@dataclass
class QA:
    image: np.ndarray  # (H, W, 3) uint8
    question: str
    answers: list[str]  # the human answers, VQAv2 style (ten per question)
    question_type: str = ""  # ours: colour / shape / count / position; VQAv2: "what color is the", ...


@dataclass
class Read:
    """What a reader found: records, and the image files that annotations name but are missing."""

    records: list = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def most_common(answers: list[str]) -> str:
    """The answer most people gave (the first of those tied), as VQAv2's multiple_choice_answer."""
    if not answers:
        raise ValueError("a question with no answers has no most common answer")
    return Counter(answers).most_common(1)[0][0]


# ---------------------------------------------------------------- files

def write_json(path: Path, obj) -> None:
    io.write_json(path, obj, indent=None)


def read_text(path: Path) -> str:
    """A UTF-8 file's text; ValueError names the file, line and byte of the first bad byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: not UTF-8 text (line {line}, byte {e.start}: {e.reason})") from None


def read_json(path: Path) -> dict:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def inside(folder: Path, name: str, what: str) -> Path:
    """`folder / name` for a path read from a dataset's own files (a card, an annotation): an
    absolute path or one that climbs out with '..' is refused, so a downloaded dataset cannot make
    training read (and the weights remember) files elsewhere on the machine."""
    rel = os.path.normpath(str(name))
    if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
        raise ValueError(f"{what}: path {name!r} leaves the dataset folder {folder}")
    return Path(folder) / rel


def load_image(path: Path, size: int | None = None) -> np.ndarray:
    """An image file as (H, W, 3) uint8, resized to (size, size) if given."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, np.uint8)


def save_png(path: Path, image: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format="PNG"))


def _field(obj: dict, key: str, path: Path, where: str):
    try:
        return obj[key]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: {where} has no {key!r} (is this the right format?)") from None


class _Images:
    """Loads each image file once; a missing file is remembered, not raised."""

    def __init__(self, folder: Path, size: int | None):
        self.folder, self.size, self.cache, self.missing = Path(folder), size, {}, []

    def get(self, name: str) -> np.ndarray | None:
        if name not in self.cache:
            try:
                self.cache[name] = load_image(inside(self.folder, name, f"image of {self.folder}"), self.size)
            except FileNotFoundError:
                self.cache[name] = None
                self.missing.append(name)
        return self.cache[name]


def _images_by_id(records: list, kind: str) -> tuple[list[np.ndarray], list[int]]:
    """Distinct image arrays (by identity) in first-seen order, and each record's image index."""
    index, images, of = {}, [], []
    for r in records:
        if not isinstance(r, kind):
            raise TypeError(f"expected {kind.__name__} records, got {type(r).__name__}")
        if id(r.image) not in index:
            index[id(r.image)] = len(images)
            images.append(r.image)
        of.append(index[id(r.image)])
    return images, of


# ---------------------------------------------------------------- COCO captions

def write_coco(folder: Path, split: str, captions: list[Caption]) -> dict:
    """COCO captions of one split: images in folder/<split>/, annotations/captions_<split>.json.

    Captions that share one image array (the same object) share one image file. Returns the
    paths (relative to `folder`) and counts, for the dataset card."""
    folder = Path(folder)
    images, of = _images_by_id(captions, Caption)
    entries = []
    for i, img in enumerate(images):
        name = OUR_IMAGE_NAME.format(data_subtype=split, image_id=i)
        save_png(folder / split / name, img)
        entries.append({"id": i, "file_name": name, "height": int(img.shape[0]), "width": int(img.shape[1])})
    anns = [{"id": k, "image_id": of[k], "caption": c.text} for k, c in enumerate(captions)]
    ann_path = f"annotations/captions_{split}.json"
    write_json(folder / ann_path, {"images": entries, "annotations": anns})
    return {"annotations": ann_path, "images": split, "count": len(anns), "image_count": len(images)}


def read_coco(annotations: Path, images: Path, size: int | None = None) -> Read:
    """Captions of a COCO annotations file, one record per caption; missing images are skipped."""
    data = read_json(annotations)
    files = {}
    for e in _field(data, "images", annotations, "the file"):
        files[_field(e, "id", annotations, "an images entry")] = _field(e, "file_name", annotations, "an images entry")
    loader, out = _Images(images, size), Read()
    for a in _field(data, "annotations", annotations, "the file"):
        image_id = _field(a, "image_id", annotations, "an annotation")
        caption = _field(a, "caption", annotations, "an annotation")
        if image_id not in files:
            out.missing.append(f"image id {image_id}")
            continue
        if (img := loader.get(files[image_id])) is not None:
            out.records.append(Caption(img, str(caption).strip()))
    out.missing += loader.missing
    return out


# ---------------------------------------------------------------- VQAv2

def write_vqa(folder: Path, split: str, qas: list[QA], name: str = "gato") -> dict:
    """VQAv2 files of one split: images in folder/<split>/, v2_OpenEnded_<name>_<split>_questions.json
    and v2_<name>_<split>_annotations.json. QAs that share one image array share its file."""
    folder = Path(folder)
    images, of = _images_by_id(qas, QA)
    for i, img in enumerate(images):
        save_png(folder / split / OUR_IMAGE_NAME.format(data_subtype=split, image_id=i), img)
    questions, anns = [], []
    for k, q in enumerate(qas):
        questions.append({"image_id": of[k], "question": q.question, "question_id": k})
        anns.append({"question_id": k, "image_id": of[k], "question_type": q.question_type,
                     "answer_type": _answer_type(q.answers), "multiple_choice_answer": most_common(q.answers),
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                 for j, a in enumerate(q.answers)]})
    q_path, a_path = f"v2_OpenEnded_{name}_{split}_questions.json", f"v2_{name}_{split}_annotations.json"
    write_json(folder / q_path, {"data_subtype": split, "questions": questions})
    write_json(folder / a_path, {"data_subtype": split, "annotations": anns})
    return {"questions": q_path, "annotations": a_path, "images": split, "image_name": OUR_IMAGE_NAME,
            "count": len(qas), "image_count": len(images)}


def _answer_type(answers: list[str]) -> str:
    a = most_common(answers)
    return "yes/no" if a in ("yes", "no") else "number" if a.isdigit() else "other"


def read_vqa(questions: Path, annotations: Path | None, images: Path, image_name: str = VQA_IMAGE_NAME,
             size: int | None = None) -> Read:
    """QAs of VQAv2 questions (+ annotations, if given; test splits have none): one per question."""
    qdata = read_json(questions)
    subtype = qdata.get("data_subtype", "")
    answers: dict = {}
    if annotations is not None:
        for a in _field(read_json(annotations), "annotations", annotations, "the file"):
            qid = _field(a, "question_id", annotations, "an annotation")
            answers[qid] = ([str(_field(x, "answer", annotations, "an answer")) for x in
                             _field(a, "answers", annotations, "an annotation")], a.get("question_type", ""))
    loader, out = _Images(images, size), Read()
    for q in _field(qdata, "questions", questions, "the file"):
        qid = _field(q, "question_id", questions, "a question")
        image_id = _field(q, "image_id", questions, "a question")
        if annotations is not None and qid not in answers:
            raise ValueError(f"{annotations}: no annotation for question_id {qid} of {questions}")
        try:
            file = image_name.format(data_subtype=subtype, image_id=image_id)
        except (KeyError, ValueError, IndexError) as e:
            raise ValueError(f"image_name {image_name!r} cannot name image {image_id!r} ({e})") from None
        if (img := loader.get(file)) is not None:
            ans, qtype = answers.get(qid, ([], ""))
            out.records.append(QA(img, str(_field(q, "question", questions, "a question")), ans, qtype))
    out.missing += loader.missing
    return out


# ---------------------------------------------------------------- text

def read_documents(path: Path) -> list[str]:
    """Documents of a file: one per line of a `.jsonl` ({"text": ...}), else the whole file."""
    path = Path(path)
    text = read_text(path)
    if path.suffix != ".jsonl":
        return [text]
    docs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {n} is not valid JSON ({e})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ValueError(f'{path}: line {n} is not an object with a "text" string')
        docs.append(obj["text"])
    return docs


def write_jsonl(path: Path, texts: list[str]) -> None:
    lines = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    atomic_write(Path(path), lambda tmp: tmp.write_text(lines, encoding="utf-8"))
