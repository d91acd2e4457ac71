"""Vision-language metrics against hand-computed values, and BLEU-4 / CIDEr-D against the COCO
caption toolkit (pycocoevalcap, a test dependency) on random corpora."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gato.evaluation.vl_metrics import (bleu4, cider_d, mean_by, normalize_answer, perplexity, text_nll,
                                        tokenize_caption, vqa_accuracy, vqa_scores)
from gato.model import Gato

from conftest import SMALL


# ------------------------------------------------------------------------------ tokenisation
def test_tokenize_caption_like_coco():
    assert tokenize_caption("A Man's dog, running.") == ["a", "man", "'s", "dog", "running"]
    assert tokenize_caption("Don't stop!") == ["do", "n't", "stop"]
    assert tokenize_caption('A black-and-white photo of 3.5 "cats" (maybe) -- ok...') == \
        ["a", "black-and-white", "photo", "of", "3.5", "cats", "maybe", "ok"]
    assert tokenize_caption("") == []
    with pytest.raises(TypeError, match="caption must be a str"):
        tokenize_caption(["a", "list"])


# ---------------------------------------------------------------------------------- BLEU-4
def test_bleu4_perfect_and_no_overlap():
    assert bleu4({1: ["a cat sits on the mat"]}, {1: "A cat sits on the mat."}) == pytest.approx(1.0, abs=1e-8)
    assert bleu4({1: ["a cat sits on the mat"]}, {1: "dogs run fast now"}) < 1e-12


def test_bleu4_brevity_penalty():
    # every n-gram matches; 4 candidate words against a 6-word reference: BP = exp(1 - 6/4)
    assert bleu4({"im": ["the cat sat on the mat"]}, {"im": "the cat sat on"}) == pytest.approx(math.exp(-0.5))


def test_bleu4_closest_reference_length_and_clipped_counts():
    # candidate 5 words; references 3 and 7 words are equally close: COCO takes the shorter -> no BP.
    # matches: 1-grams 5/5, 2-grams 3/4 ("on mat" misses), 3-grams 2/3, 4-grams 1/2
    refs = {0: ["the cat sat", "the cat sat on the red mat"]}
    assert bleu4(refs, {0: "the cat sat on mat"}) == pytest.approx((1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # "the" six times is clipped at the reference's two: p1 = 2/6, no higher-order matches
    assert bleu4({0: ["the cat on the mat x"]}, {0: "the the the the the the"}) < 1e-3


def test_bleu4_is_corpus_level_not_a_mean_of_sentences():
    # pooled counts: p1 = 4/6, p2 = 3/4, p3 = 2/2, p4 = 1/1; lengths 6 vs 6 (the mean of the two
    # sentence scores would be about 0.5)
    refs = {"a": ["w x y z"], "b": ["p q"]}
    assert bleu4(refs, {"a": "w x y z", "b": "s t"}) == pytest.approx((4 / 6 * 3 / 4) ** 0.25)


# --------------------------------------------------------------------------------- CIDEr-D
def test_cider_perfect_match_is_ten_with_rare_ngrams():
    refs = {1: ["a cat sits on a mat"], 2: ["two dogs run in snow"]}
    assert cider_d(refs, {1: "a cat sits on a mat", 2: "two dogs run in snow"}) == pytest.approx(10.0)


def test_cider_zero_cases():
    # no shared n-gram
    assert cider_d({1: ["a cat sits"], 2: ["two dogs run"]}, {1: "red bus", 2: "blue car"}) == 0.0
    # a single image: every reference n-gram occurs in all (one) images, so its idf is log(1/1) = 0
    assert cider_d({1: ["a cat sits on a mat"]}, {1: "a cat sits on a mat"}) == 0.0


def test_cider_length_penalty_and_cosine_by_hand():
    # 2 images, all n-grams in one image only (or none): every weight is tf * log 2, so per n the
    # score is the plain count cosine. Image 1: 6-word candidate, 4-word reference.
    refs = {1: ["a b c d"], 2: ["w x y z"]}
    cosines = [4 / math.sqrt(6 * 4), 3 / math.sqrt(5 * 3), 2 / math.sqrt(4 * 2), 1 / math.sqrt(3 * 1)]
    penalty = math.exp(-(6 - 4) ** 2 / (2 * 6.0 ** 2))
    expected = (10 * penalty * sum(cosines) / 4 + 10.0) / 2
    assert cider_d(refs, {1: "a b c d e f", 2: "w x y z"}) == pytest.approx(expected)


@pytest.mark.parametrize("metric", [bleu4, cider_d])
def test_caption_bad_input_names_the_image(metric):
    with pytest.raises(ValueError, match="image id 'img7'"):
        metric({"img3": ["a cat"], "img7": []}, {"img3": "a cat", "img7": "a dog"})
    with pytest.raises(ValueError, match=r"no candidate caption for image ids \['img7'\]"):
        metric({"img3": ["a cat"], "img7": ["a dog"]}, {"img3": "a cat"})
    with pytest.raises(ValueError, match=r"no reference captions for image ids \[9\]"):
        metric({"img3": ["a cat"]}, {"img3": "a cat", 9: "x"})
    with pytest.raises(ValueError, match="image id 'img3'"):
        metric({"img3": "a cat"}, {"img3": "a cat"})  # a bare string, not a list of captions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu4_and_cider_match_the_coco_toolkit(seed):
    bleu = pytest.importorskip("pycocoevalcap.bleu.bleu")
    cider = pytest.importorskip("pycocoevalcap.cider.cider")
    rng = np.random.default_rng(seed)
    words = "a the cat dog sits runs on in mat park red big small two".split()

    def sentence(lo):
        return list(rng.choice(words, size=int(rng.integers(lo, 13))))

    def perturbed(ref):  # a reference with some words replaced and its tail cut or extended
        out = [w if rng.random() < 0.7 else str(rng.choice(words)) for w in ref]
        return " ".join(out[:int(rng.integers(0, len(out) + 1))] + sentence(0)[:int(rng.integers(0, 3))])

    refs = {i: [" ".join(sentence(1)) for _ in range(int(rng.integers(1, 6)))] for i in range(30)}
    cands = {i: perturbed(r[0].split()) for i, r in refs.items()}  # with the odd empty caption
    coco_bleu, _ = bleu.Bleu(4).compute_score(refs, {i: [c] for i, c in cands.items()}, verbose=0)
    coco_cider, _ = cider.Cider().compute_score(refs, {i: [c] for i, c in cands.items()})
    assert bleu4(refs, cands) == pytest.approx(coco_bleu[3], rel=1e-9, abs=1e-12)
    assert cider_d(refs, cands) == pytest.approx(float(coco_cider), rel=1e-9, abs=1e-12)


# -------------------------------------------------------------------------------------- VQA
def test_vqa_accuracy_leave_one_out_by_hand():
    # k of 10 humans agree with the prediction: mean over leave-one-out of min(matches / 3, 1)
    for k, expected in [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]:
        answers = ["2"] * k + ["3"] * (10 - k)
        assert vqa_accuracy("2", answers) == pytest.approx(expected), k
    assert vqa_accuracy("red", ["red"]) == 1.0 and vqa_accuracy("blue", ["red"]) == 0.0  # one answer: exact


def test_vqa_normalisation():
    assert normalize_answer("Two") == "2"
    assert normalize_answer("a dog") == normalize_answer("dog") == "dog"
    assert normalize_answer("Yes.") == "yes"
    assert normalize_answer("dont") == "don't"
    assert normalize_answer("1,000") == "1000" and normalize_answer("3.5") == "3.5"
    assert normalize_answer("hot-dog") == "hot dog" and normalize_answer("hot - dog") == "hot dog"
    assert vqa_accuracy("Two", ["2"] * 10) == 1.0
    assert vqa_accuracy("a dog", ["dog"] * 10) == 1.0
    assert vqa_accuracy("dog", ["the dog"] * 10) == 1.0
    assert vqa_accuracy("cat", ["dog"] * 10) == 0.0


def test_vqa_scores_and_breakdown():
    answers = {1: ["yes"] * 10, 2: ["2"] * 10, 3: ["red"] * 10}
    scores = vqa_scores({1: "Yes", 2: "three", 3: "red"}, answers)
    assert scores == {1: 1.0, 2: 0.0, 3: 1.0}
    split = {1: "seen", 2: "held-out", 3: "held-out"}
    assert mean_by(scores, split) == {"overall": pytest.approx(2 / 3), "held-out": 0.5, "seen": 1.0}
    with pytest.raises(ValueError, match="question id 5"):
        vqa_scores({5: "yes"}, {5: []})
    with pytest.raises(ValueError, match=r"no predicted answer for question ids \[2\]"):
        vqa_scores({1: "yes"}, {1: ["yes"], 2: ["no"]})
    with pytest.raises(ValueError, match=r"no group for ids \[3\]"):
        mean_by(scores, {1: "seen", 2: "seen"})


# ------------------------------------------------------------------------------- perplexity
def test_perplexity_math():
    assert perplexity(10 * math.log(4.0), 10) == pytest.approx(4.0)
    assert perplexity(0.0, 3) == 1.0
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError, match="perplexity of 0 tokens"):
        perplexity(1.0, 0)


MODEL = dataclasses.replace(SMALL, context=16)  # 16 positions: the 21-position document below is too long


def test_text_nll_is_next_token_cross_entropy_of_each_document():
    torch.manual_seed(0)
    model = Gato(MODEL)
    docs = [np.array([5, 9, 2, 7, 7]), np.array([1, 3]), np.array([60, 0, 11, 4, 4, 4, 8])]
    expected = 0.0
    for d in docs:  # one document at a time, [BOS] + text, by hand
        ids = torch.tensor([[MODEL.token_map.bos, *d]])
        kinds = torch.full_like(ids, 2)  # Kind.TEXT (BOS kind does not change the embedding)
        logits, _ = model(ids, kinds, torch.full_like(ids, -1))
        expected += F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum").item()
    nll, count = text_nll(model, docs, batch_size=2)  # padded batches of two
    assert count == sum(len(d) for d in docs)
    assert nll == pytest.approx(expected, rel=1e-5)
    assert model.training  # the mode is restored
    with pytest.raises(ValueError, match="document 1 has 21 positions"):
        text_nll(model, [np.array([1]), np.arange(20)])
