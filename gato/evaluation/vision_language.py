"""Vision-language and text evaluation: the same weights that act, scored on held-out splits.

Per set of a dataset root (`gato collect vl text`, or a user's COCO/VQAv2/JSONL imported there):
text sets get the perplexity of their test documents; caption sets BLEU-4 and CIDEr-D of
greedy captions of their test images; VQA sets the VQAv2 accuracy of greedy answers on every
held-out split (test: seen attribute combinations; heldout: unseen ones), per question type.
Each figure comes with a chance level computed the same way, so "above chance" is a number:
captions of random training images for BLEU/CIDEr, the most common training answer of each
question type (the VQA "prior" baseline) for accuracy.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gato.evaluation import vl_metrics as M


def evaluate_vl(model, text, data: Path, *, sets: tuple[str, ...] = (), max_examples: int = 200,
                batch_size: int = 32, seed: int = 0, progress: bool = False) -> dict[str, dict]:
    """Scores of every vision-language and text set under `data` (or `sets`), keyed by set name;
    `progress`: a bar with a time estimate over each set's examples."""
    out = {}
    for name, card in check_sets(data, sets).items():
        run = {"text": _text, "captions": _captions, "vqa": _vqa}[card["kind"]]
        try:
            out[name] = {"kind": card["kind"]} | run(model, text, Path(data), name, card, max_examples, batch_size,
                                                     seed, progress)
        except ValueError as e:
            raise ValueError(f"{Path(data) / name}: {e}") from None
    return out


def check_sets(data: Path, sets: tuple[str, ...] = ()) -> dict[str, dict]:
    """The cards of the sets to score, each checked to hold records in every split that is scored
    (test; for VQA every split but train): `gato eval` calls it before any rollout, so a set with
    nothing to score is an error naming it up front, not after the episodes."""
    from gato.data.vl.formats import read_json
    from gato.data.vl.sets import find_sets, load_set

    cards = {}
    for name in list(sets) or find_sets(data):
        folder = Path(data) / name
        card = read_json(folder / "card.json")
        if card.get("kind") not in ("text", "captions", "vqa"):
            raise ValueError(f"{folder}: not a vision-language or text set (card kind {card.get('kind')!r})")
        scored = [s for s in card.get("splits", {}) if s != "train"] if card["kind"] == "vqa" else ["test"]
        for split in scored or ["test"]:
            if not load_set(data, name, split).records:
                raise ValueError(f"{folder}: its {split} split is empty, so there is nothing to score; collect it "
                                 f"again with held-out records, or evaluate with --no-vl")
        cards[name] = card
    return cards


def _load(data, name, split, limit):
    from gato.data.vl.sets import load_set

    records = load_set(data, name, split).records
    if 0 < limit < len(records):  # a fixed random subset: a split's first records can be atypical
        keep = np.sort(np.random.default_rng(0).choice(len(records), limit, replace=False))
        records = [records[i] for i in keep]
    return records


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="example", disable=not progress, leave=False)


def _generate(model, text, prompts, batch_size: int, max_tokens: int, desc: str, progress: bool) -> list[str]:
    from gato.generation import generate

    out = []
    with _bar(len(prompts), desc, progress) as bar:
        for i in range(0, len(prompts), batch_size):
            ids = generate(model, prompts[i:i + batch_size], max_tokens, eos_id=text.eos_id)
            out += [text.decode(x).strip() for x in ids]
            bar.update(len(ids))
    return out


def _text(model, text, data, name, card, limit, batch_size, seed, progress) -> dict:
    docs = _load(data, name, "test", limit)
    room = model.cfg.context - 1  # BOS comes first
    ids = [text.encode(d, eos=True)[:room] for d in docs]
    if not ids:
        raise ValueError(f"{Path(data) / name}: no test documents to score")
    nll, count = 0.0, 0
    with _bar(len(ids), name, progress) as bar:
        for i in range(0, len(ids), batch_size):  # summed NLL and token counts add up over batches
            n, c = M.text_nll(model, ids[i:i + batch_size], batch_size=batch_size)
            nll, count = nll + n, count + c
            bar.update(len(ids[i:i + batch_size]))
    return {"split": "test", "documents": len(docs), "tokens": count, "perplexity": M.perplexity(nll, count)}


def _captions(model, text, data, name, card, limit, batch_size, seed, progress) -> dict:
    from gato.generation import image_prompt

    recs = _load(data, name, "test", limit)
    refs: dict[bytes, list[str]] = {}  # COCO has several captions per image: group them
    images: dict[bytes, np.ndarray] = {}
    for r in recs:
        key = r.image.tobytes()
        refs.setdefault(key, []).append(r.text)
        images[key] = r.image
    keys = list(refs)
    tm = model.cfg.token_map
    prompts = [image_prompt(images[k], np.zeros(0, np.int64), tm) for k in keys]
    got = dict(zip(keys, _generate(model, text, prompts, batch_size, 48, name, progress)))
    train = [r.text for r in _load(data, name, "train", 0)]
    rng = np.random.default_rng(seed)
    chance = {k: train[int(rng.integers(len(train)))] for k in keys}
    return {"split": "test", "images": len(keys), "bleu4": M.bleu4(refs, got), "cider": M.cider_d(refs, got),
            "chance_bleu4": M.bleu4(refs, chance), "chance_cider": M.cider_d(refs, chance),
            "examples": [{"generated": got[k], "reference": refs[k][0]} for k in keys[:5]]}


def _vqa(model, text, data, name, card, limit, batch_size, seed, progress) -> dict:
    from gato.data.vl.sets import vqa_prompt
    from gato.generation import image_prompt

    train = _load(data, name, "train", 0)
    by_type: dict[str, Counter] = {}
    for r in train:
        by_type.setdefault(r.question_type, Counter()).update(r.answers)
    prior = {t: c.most_common(1)[0][0] for t, c in by_type.items()}
    overall = Counter(a for r in train for a in r.answers).most_common(1)[0][0] if train else ""
    tm, splits = model.cfg.token_map, {}
    for split in (s for s in card["splits"] if s != "train"):
        recs = [r for r in _load(data, name, split, limit) if r.answers]
        if not recs:
            continue
        prompts = [image_prompt(r.image, text.encode(vqa_prompt(r.question)), tm) for r in recs]
        preds = dict(enumerate(_generate(model, text, prompts, batch_size, 8, f"{name} {split}", progress)))
        answers = {i: r.answers for i, r in enumerate(recs)}
        types = {i: r.question_type or "all" for i, r in enumerate(recs)}
        scores = M.vqa_scores(preds, answers)
        base = M.vqa_scores({i: prior.get(r.question_type, overall) for i, r in enumerate(recs)}, answers)
        acc, chance = M.mean_by(scores, types), M.mean_by(base, types)
        splits[split] = {"questions": len(recs), "accuracy": acc.pop("overall"), "by_type": acc,
                         "prior_accuracy": chance.pop("overall"), "prior_by_type": chance,
                         "examples": [{"question": r.question, "answer": preds[i], "expected": r.answers[0]}
                                      for i, r in enumerate(recs[:5])]}
    return {"splits": splits}
