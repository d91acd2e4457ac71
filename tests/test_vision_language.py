"""Vision-language and text data: the standard formats on tiny fixtures, each offline source,
sets on disk (collect, resume, import) and the training sequences they give."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gato.commands.data import collect
from gato.commands.tokenizer import tokenizer_train
from gato.data.datasets import find_tasks
from gato.data.vl import builders, sets
from gato.data.vl.formats import (QA, Caption, most_common, read_coco, read_documents, read_vqa, write_coco,
                                  write_jsonl, write_vqa)
from gato.data.vl.sets import vqa_ids, vqa_prompt
from gato.tokenization.text import TextTokenizer
from gato.tokenization.vocab import Kind, TokenMap


def _img(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def text():
    return TextTokenizer.default()


@pytest.fixture(scope="module")
def tm(text):
    return TokenMap(text_vocab=text.vocab_size)


def test_vqa_text_format_is_the_prompt_then_the_answer(text):
    assert vqa_prompt(" What colour is it? ") == "Q: What colour is it? A:"
    ids, n = vqa_ids(text, " What colour is it? ", "red ")
    assert list(ids[:n]) == list(text.encode("Q: What colour is it? A:"))  # as `gato vqa` prompts
    assert ids[-1] == text.eos_id and text.decode(ids) == "Q: What colour is it? A: red"
    assert most_common(["two", "2", "2", "two", "2"]) == "2"


def test_split_by_hash_is_stable_and_about_a_tenth_test():
    splits = [builders.split_of(f"item/{i}") for i in range(5000)]
    assert splits == [builders.split_of(f"item/{i}") for i in range(5000)]
    assert 0.08 < splits.count("test") / len(splits) < 0.12
    assert [i for i in range(20) if builders.split_of(f"digits/{i}") == "test"] == [5, 10, 14]  # fixed across machines


# ---------------------------------------------------------------- COCO

def test_coco_round_trip_shares_images(tmp_path):
    a, b = _img(0), _img(1, 48, 32)
    info = write_coco(tmp_path, "train", [Caption(a, "a cat"), Caption(a, "a small cat"), Caption(b, "a dog")])
    assert info["count"] == 3 and info["image_count"] == 2
    data = json.loads((tmp_path / info["annotations"]).read_text())
    assert {"id", "file_name", "height", "width"} <= set(data["images"][0])
    assert data["images"][1]["height"] == 48
    got = read_coco(tmp_path / info["annotations"], tmp_path / info["images"])
    assert [c.text for c in got.records] == ["a cat", "a small cat", "a dog"] and not got.missing
    assert np.array_equal(got.records[0].image, a) and np.array_equal(got.records[2].image, b)
    small = read_coco(tmp_path / info["annotations"], tmp_path / info["images"], size=16)
    assert small.records[2].image.shape == (16, 16, 3)


def test_coco_missing_images_are_skipped_and_counted(tmp_path):
    info = write_coco(tmp_path, "val", [Caption(_img(i), f"caption {i}") for i in range(3)])
    ann = tmp_path / info["annotations"]
    data = json.loads(ann.read_text())
    (tmp_path / "val" / data["images"][1]["file_name"]).unlink()
    data["annotations"].append({"id": 99, "image_id": 12345, "caption": "no such image"})
    ann.write_text(json.dumps(data))
    got = read_coco(ann, tmp_path / "val")
    assert [c.text for c in got.records] == ["caption 0", "caption 2"]
    assert got.missing == ["image id 12345", data["images"][1]["file_name"]]


def test_coco_bad_image_file_and_bad_json_name_the_file(tmp_path):
    info = write_coco(tmp_path, "train", [Caption(_img(0), "x")])
    name = json.loads((tmp_path / info["annotations"]).read_text())["images"][0]["file_name"]
    (tmp_path / "train" / name).write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=f"{name}.*not a readable image"):
        read_coco(tmp_path / info["annotations"], tmp_path / "train")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"images": [], "anns": []}))
    with pytest.raises(ValueError, match="wrong.json.*'annotations'"):
        read_coco(wrong, tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        read_coco(tmp_path / "broken.json", tmp_path)


# ---------------------------------------------------------------- VQAv2

def test_vqa_round_trip(tmp_path):
    a, b = _img(0), _img(1)
    qas = [QA(a, "What colour?", ["red"] * 7 + ["pink"] * 3, "colour"),
           QA(a, "How many?", ["2"] * 10, "count"), QA(b, "Is it left?", ["no"] * 10, "position")]
    info = write_vqa(tmp_path, "train", qas)
    anns = json.loads((tmp_path / info["annotations"]).read_text())["annotations"]
    assert [x["answer_type"] for x in anns] == ["other", "number", "yes/no"]
    assert anns[0]["multiple_choice_answer"] == "red" and len(anns[0]["answers"]) == 10
    got = read_vqa(tmp_path / info["questions"], tmp_path / info["annotations"], tmp_path / "train",
                   image_name=info["image_name"])
    assert [(q.question, q.answers, q.question_type) for q in got.records] == \
        [(q.question, q.answers, q.question_type) for q in qas]
    assert got.records[0].image is got.records[1].image and np.array_equal(got.records[2].image, b)
    no_answers = read_vqa(tmp_path / info["questions"], None, tmp_path / "train", image_name=info["image_name"])
    assert [q.answers for q in no_answers.records] == [[], [], []]


def test_vqa_reads_vqav2_image_naming_and_skips_missing_images(tmp_path):
    (tmp_path / "val2014").mkdir()
    Image.fromarray(_img(3)).save(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    questions = {"data_subtype": "val2014", "questions": [
        {"image_id": 42, "question": "What is it?", "question_id": 420},
        {"image_id": 7, "question": "Where?", "question_id": 70}]}
    answers = {"annotations": [
        {"question_id": q, "image_id": i, "question_type": "what is", "answer_type": "other",
         "multiple_choice_answer": "noise", "answers": [{"answer": "noise", "answer_confidence": "yes",
                                                         "answer_id": 1}]} for q, i in ((420, 42), (70, 7))]}
    (tmp_path / "q.json").write_text(json.dumps(questions))
    (tmp_path / "a.json").write_text(json.dumps(answers))
    got = read_vqa(tmp_path / "q.json", tmp_path / "a.json", tmp_path / "val2014")
    assert [q.question for q in got.records] == ["What is it?"] and got.records[0].image.shape == (32, 32, 3)
    assert got.missing == ["COCO_val2014_000000000007.jpg"]
    answers["annotations"].pop()
    (tmp_path / "a.json").write_text(json.dumps(answers))
    with pytest.raises(ValueError, match="a.json: no annotation for question_id 70"):
        read_vqa(tmp_path / "q.json", tmp_path / "a.json", tmp_path / "val2014")


# ---------------------------------------------------------------- text

def test_documents_jsonl_and_plain_text(tmp_path):
    write_jsonl(tmp_path / "docs.jsonl", ["first document", "second\nwith a newline", "émoji ✓"])
    assert read_documents(tmp_path / "docs.jsonl") == ["first document", "second\nwith a newline", "émoji ✓"]
    (tmp_path / "book.txt").write_text("one whole book\n\nin one file\n", encoding="utf-8")
    assert read_documents(tmp_path / "book.txt") == ["one whole book\n\nin one file\n"]


def test_bad_text_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin1.jsonl: not UTF-8 text \(line 2, byte 30"):
        read_documents(bad)
    (tmp_path / "x.jsonl").write_text('{"text": "ok"}\n\n{"body": "no text key"}\n')
    with pytest.raises(ValueError, match='x.jsonl: line 3 is not an object with a "text"'):
        read_documents(tmp_path / "x.jsonl")
    (tmp_path / "y.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="y.jsonl: line 1 is not valid JSON"):
        read_documents(tmp_path / "y.jsonl")


WORDNET_DATA = """  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis; "the dog barked all night"
"""


def test_corpus_builds_offline_and_the_tokenizer_round_trips_it(tmp_path, text):
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    for pos in ("noun", "verb", "adj", "adv"):
        (wordnet / f"data.{pos}").write_text(WORDNET_DATA if pos == "noun" else "", encoding="utf-8")
    glosses = builders.wordnet_glosses(wordnet)
    assert glosses == ['dog, domestic dog, Canis familiaris: a member of the genus Canis; "the dog barked all night"']
    corpus = builders.text_corpus(wordnet=wordnet)
    docs = corpus["train"] + corpus["test"]
    assert glosses[0] in docs and len(docs) == len(set(docs)) and min(map(len, docs)) >= 32
    assert any("Iris plants dataset" in d for d in docs)  # scikit-learn's dataset descriptions
    assert 0.07 < len(corpus["test"]) / len(docs) < 0.13
    assert builders.clean_text("  a  \n\n\n\nb \n") == "a\n\nb"
    write_jsonl(tmp_path / "train.jsonl", corpus["train"][:400])
    model = tokenizer_train(tmp_path / "c.model", 500, [tmp_path / "train.jsonl"])
    tok = TextTokenizer.from_file(model)
    for doc in corpus["test"][:50] + glosses:
        assert tok.decode(tok.encode(doc)) == doc
    assert all(text.decode(text.encode(d)) == d for d in corpus["test"][:50])


# ---------------------------------------------------------------- offline sources

def test_openmoji_renders_non_blank_emoji_with_captions():
    got = builders.openmoji_captions(limit=6)
    recs = got["train"] + got["test"]
    assert len(recs) == 6
    for r in recs:
        assert r.image.shape == (64, 64, 3) and r.image.dtype == np.uint8
        assert (r.image != 255).any(axis=2).mean() > 0.02  # something drawn on the white canvas
        assert r.text.startswith("an emoji of ")
    assert "an emoji of a copyright sign" in [r.text for r in recs]
    assert len({r.image.tobytes() for r in recs}) == 6


def test_digits_and_babyai_captions():
    from sklearn.datasets import load_digits

    got = builders.digits_captions(limit=30)
    recs = got["train"] + got["test"]
    assert len(recs) == 30 and recs[0].image.shape == (32, 32, 3)
    words = Counter(r.text.rsplit(" ", 1)[1] for r in recs)
    target = Counter(builders.DIGIT_WORDS[t] for t in load_digits().target[:30])
    assert words == target
    baby = builders.babyai_captions(limit=6)
    frames = baby["train"] + baby["test"]
    assert len(frames) == 6 and all(r.image.shape[0] <= 64 and r.image.shape[1] <= 64 for r in frames)
    assert all(r.text.startswith(("go to ", "pick up ", "put ")) for r in frames)  # one of each level
    assert [r.text for r in builders.babyai_captions(limit=6)["train"]] == [r.text for r in baby["train"]]


def test_scenes_hold_out_combinations_and_answer_correctly():
    caps, qas = builders.scene_captions(limit=300, seed=1), builders.scene_qas(limit=300, seed=1)
    assert set(caps) == {"train", "test", "heldout"} and all(caps.values())
    for split, recs in caps.items():
        combos = {m for r in recs for m in _combos(r.text)}
        if split == "heldout":
            assert all(_combos(r.text) & builders.HELDOUT for r in recs)
        else:
            assert not combos & builders.HELDOUT
    assert len({m for r in caps["train"] for m in _combos(r.text)}) == 18 - len(builders.HELDOUT)
    assert {q.question_type for q in qas["train"]} == set(builders.QUESTION_TYPES)
    for q in qas["heldout"]:
        if q.question_type in ("colour", "shape"):  # held-out questions ask about a held-out shape
            colour, shape = (q.answers[0], q.question.split()[4]) if q.question_type == "colour" \
                else (q.question.split()[4], q.answers[0])
            assert (colour, shape) in builders.HELDOUT, q.question
    again = builders.scene_captions(limit=300, seed=1)
    assert all(np.array_equal(a.image, b.image) and a.text == b.text for a, b in zip(caps["test"], again["test"]))


def _combos(caption: str) -> set[tuple[str, str]]:
    words = caption.replace(",", "").split()
    return {(words[i], words[i + 1]) for i, w in enumerate(words[:-1])
            if w in builders.SCENE_COLOURS and words[i + 1] in builders.SHAPES}


def test_scene_questions_on_a_known_scene():
    objs = [builders.Shape("red", "circle", 0, 0), builders.Shape("green", "square", 2, 2)]
    assert builders.scene_caption(objs) == "a red circle at the top left and a green square at the bottom right"
    seen = {}
    for seed in range(40):
        for q, a, t in builders.scene_questions(objs, np.random.default_rng(seed)):
            seen[q] = a
    assert seen["What colour is the circle at the top left?"] == "red"
    assert seen["What shape is the green object at the bottom right?"] == "square"
    assert seen["How many shapes are there?"] == "2"
    assert seen.get("Is the red circle left of the green square?", "yes") == "yes"
    assert seen.get("Is the red circle below the green square?", "no") == "no"
    assert seen.get("Is the green square above the red circle?", "no") == "no"
    assert {"yes", "no"} <= {a for q, a in seen.items() if q.startswith("Is ")}


# ---------------------------------------------------------------- sets on disk and sources

def test_collect_builds_sets_resumably_beside_control_tasks(tmp_path, monkeypatch, capsys):
    real = builders.SETS["vl/digits"]

    def killed(**kw):
        raise KeyboardInterrupt

    monkeypatch.setitem(builders.SETS, "vl/digits", builders.SetDef(real.kind, killed, real.licence, real.packages))
    with pytest.raises(KeyboardInterrupt):
        collect(("vl/scenes", "vl/digits"), out=tmp_path, vl_limit=20, progress=False)
    assert (tmp_path / "vl/scenes/card.json").exists() and not (tmp_path / "vl/digits/card.json").exists()
    monkeypatch.setitem(builders.SETS, "vl/digits", real)
    stamp = (tmp_path / "vl/scenes/card.json").stat().st_mtime_ns
    result = collect(("vl/scenes", "vl/digits"), out=tmp_path, vl_limit=20, progress=False)
    assert (tmp_path / "vl/scenes/card.json").stat().st_mtime_ns == stamp  # finished: skipped
    assert "already built" in capsys.readouterr().out
    assert sum(result["sets"]["vl/digits"].values()) == 20
    card = json.loads((tmp_path / "vl/digits/card.json").read_text())
    assert card["kind"] == "captions" and card["format"] == "coco" and "scikit-learn" in card["packages"]
    collect(("control/cartpole",), episodes=1, test_episodes=0, out=tmp_path, progress=False)
    assert find_tasks(tmp_path) == ["control/cartpole"]  # set cards are not control tasks
    assert sets.find_sets(tmp_path) == ["vl/digits", "vl/scenes"]
    with pytest.raises(ValueError, match="unknown data set 'vl/nope'"):
        collect(("vl/nope",), out=tmp_path)


@pytest.fixture(scope="module")
def sets_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    sets.collect_sets(["vl/scenes", "vl/scenes-vqa", "vl/digits"], root, limit=30)
    (root / "text/tiny").mkdir(parents=True)
    write_jsonl(root / "text/tiny/train.jsonl", ["a first small document about a red ball", "and a second one"])
    sets.import_set(root, "text/tiny", "text", {"train": {"documents": [root / "text/tiny/train.jsonl"]}})
    return root


def _runs(seq):
    """(kind, start, stop) of each maximal run of one kind."""
    cut = np.flatnonzero(np.diff(seq.kinds.astype(int))) + 1
    bounds = [0, *cut.tolist(), len(seq)]
    return [(int(seq.kinds[a]), a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def test_sources_yield_well_formed_sequences(sets_root, tm, text):
    sources = {s.name: s for s in sets.vl_sources(sets_root, tm, text, verbose=False)}
    assert sorted(sources) == ["text/tiny", "vl/digits", "vl/scenes", "vl/scenes-vqa"]
    captions = {r.text for r in sets.load_set(sets_root, "vl/scenes").records}
    answers = {f"{vqa_prompt(q.question)} {q.answers[0]}" for q in sets.load_set(sets_root, "vl/scenes-vqa").records}
    rng = np.random.default_rng(0)
    for name, src in sources.items():
        seq = src.sample(rng, 600)
        assert len(seq) == 600
        assert set(np.unique(seq.kinds)) <= {Kind.BOS, Kind.TEXT, Kind.IMAGE}
        if name == "vl/scenes-vqa":  # loss only on the answers: some text, never an image
            assert 0 < seq.loss_mask.sum() < (seq.kinds == Kind.TEXT).sum()
            assert not (seq.loss_mask & (seq.kinds != Kind.TEXT)).any()
        else:
            assert np.array_equal(seq.loss_mask, seq.kinds == Kind.TEXT)  # loss on all text
        assert (seq.kinds == Kind.IMAGE).sum() == len(seq.patches) == len(seq.patch_pos)
        assert np.array_equal(seq.ids[seq.kinds == Kind.IMAGE], np.arange(len(seq.patches)))
        runs = _runs(seq)[1:-1]  # whole runs: the window may cut the first and last
        if name == "text/tiny":
            assert not len(seq.patches)
            continue
        patches_per_image = 16 if name.startswith("vl/scenes") else 4  # 64x64 scenes, 32x32 digits
        assert all(b - a == patches_per_image for k, a, b in runs if k == Kind.IMAGE)
        texts = [text.decode(seq.ids[a:b]) for k, a, b in runs if k == Kind.TEXT]
        expected = captions if name == "vl/scenes" else answers if name == "vl/scenes-vqa" else None
        if expected is not None:
            assert texts and all(t in expected for t in texts), texts
        else:
            assert all(t.startswith("a handwritten digit ") for t in texts)


def test_import_set_reads_a_users_coco_files_resized(tmp_path, tm, text):
    user = tmp_path / "mycoco"
    info = write_coco(user, "train2014", [Caption(_img(i, 120, 90), f"photo {i}") for i in range(4)])
    sets.import_set(tmp_path / "data", "vl/mycoco", "captions",
                    {"train": {"annotations": user / info["annotations"], "images": user / "train2014"}}, image_size=32)
    got = sets.load_set(tmp_path / "data", "vl/mycoco", "train")
    assert [r.text for r in got.records] == [f"photo {i}" for i in range(4)]
    assert all(r.image.shape == (32, 32, 3) for r in got.records)
    [src] = sets.vl_sources(tmp_path / "data", tm, text, verbose=False)
    assert len(src.sample(np.random.default_rng(0), 100).patches) > 0
    with pytest.raises(ValueError, match="needs 'images'"):
        sets.import_set(tmp_path / "data", "vl/x", "captions", {"train": {"annotations": user / info["annotations"]}})
    with pytest.raises(FileNotFoundError, match="nope.json"):
        sets.import_set(tmp_path / "data", "vl/x", "captions", {"train": {"annotations": user / "nope.json",
                                                                           "images": user}})
    with pytest.raises(ValueError, match="no split 'test'"):
        sets.load_set(tmp_path / "data", "vl/mycoco", "test")
    card = json.loads((tmp_path / "data/vl/mycoco/card.json").read_text())
    assert all(not Path(p).is_absolute() for p in card["splits"]["train"].values() if isinstance(p, str))


@pytest.mark.parametrize("key,bad", [("documents", ["../../../secret.txt"]), ("documents", ["/etc/hostname"]),
                                     ("annotations", "../outside.json")])
def test_paths_in_a_card_stay_inside_the_set_folder(tmp_path, key, bad):
    """A downloaded card cannot make training read files elsewhere (they would leak into weights)."""
    (tmp_path / "secret.txt").write_text("a secret\n")
    folder = tmp_path / "data" / "x" / "set"
    folder.mkdir(parents=True)
    kind = "text" if key == "documents" else "captions"
    split = {key: bad} if kind == "text" else {"annotations": bad, "images": "imgs"}
    (folder / "card.json").write_text(json.dumps({"kind": kind, "name": "x/set", "splits": {"train": split}}))
    with pytest.raises(ValueError, match="leaves the dataset folder"):
        sets.load_set(tmp_path / "data", "x/set", "train")


def test_image_names_in_annotations_stay_inside_the_image_folder(tmp_path):
    user = tmp_path / "coco"
    info = write_coco(user, "train2014", [Caption(_img(0, 32, 32), "a photo")])
    ann = user / info["annotations"]
    data = json.loads(ann.read_text())
    data["images"][0]["file_name"] = "../../escape.png"
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="escape.png.*leaves the dataset folder"):
        read_coco(ann, user / "train2014", 32)


@pytest.mark.slow
def test_full_sets_build(tmp_path):
    """Every set at full size: sizes as documented in docs/vision_language.md."""
    result = collect(("vl", "text"), out=tmp_path, progress=False)["sets"]
    assert result["vl/openmoji"]["train"] > 1200 and result["vl/digits"]["train"] > 1500
    assert result["vl/babyai"]["train"] > 1500 and result["vl/scenes"]["heldout"] > 1500
    assert result["vl/scenes-vqa"]["train"] > 3 * result["vl/scenes"]["train"]
    assert result["text/corpus"]["train"] > 2000
    openmoji = sets.load_set(tmp_path, "vl/openmoji").records
    assert all((r.image != 255).any() for r in openmoji)
