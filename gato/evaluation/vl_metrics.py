"""Vision-language metrics as the standard toolkits compute them, so numbers compare with papers:
COCO caption BLEU-4 and CIDEr-D (tylin/coco-caption, pip `pycocoevalcap`), VQAv2 accuracy
(GT-Vision-Lab/VQA vqaEval.py) and text perplexity. Pure Python; only `text_nll` needs torch.
Exact definitions and the few deviations: docs/metrics.md.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence

# --- captions -------------------------------------------------------------------------------

# PTBTokenizer's clitics (split off the word before them) and the tokens COCO drops after it.
_CLITIC = re.compile(r"(?<=\w)('s|'re|'ve|'ll|'d|'m)\b|(?<=\w)(n't)\b")
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|\w+(?:[-./&']\w+)*|\S")
_DROPPED = re.compile(r"""[.?!,:;\-'"`()\[\]{}]+""")


def tokenize_caption(text: str) -> list[str]:
    """COCO's caption tokenisation without Java: PTBTokenizer (-lowerCase) then its punctuation
    removal. Lowercase; clitics split ("dog's" -> dog 's, "don't" -> do n't); tokens made only of
    . ? ! , : ; - quotes or brackets dropped; hyphenated words and decimals stay whole."""
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, got {type(text).__name__}: {text!r}")
    text = _CLITIC.sub(lambda m: " " + m.group(0), text.lower())
    return [t for t in _TOKEN.findall(text) if not _DROPPED.fullmatch(t)]


def _ngrams(words: list[str], n: int = 4) -> Counter:
    """Counts of all 1..n-grams of `words`, keyed by tuple."""
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def _tokenized(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]):
    """[(candidate tokens, [reference tokens])] in the references' key order, after checks that
    name the offending image id."""
    if missing := [k for k in references if k not in candidates]:
        raise ValueError(f"no candidate caption for image ids {missing[:5]} ({len(missing)} in all)")
    if extra := [k for k in candidates if k not in references]:
        raise ValueError(f"no reference captions for image ids {extra[:5]} ({len(extra)} in all)")
    if not references:
        raise ValueError("no images to score")
    out = []
    for key, refs in references.items():
        if isinstance(refs, str) or not refs:
            raise ValueError(f"image id {key!r}: references must be a non-empty list of captions, got {refs!r}")
        out.append((tokenize_caption(candidates[key]), [tokenize_caption(r) for r in refs]))
    return out


def bleu4(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]) -> float:
    """Corpus BLEU-4 as COCO computes it: clipped 1..4-gram counts and lengths summed over images,
    (p1 p2 p3 p4)^(1/4), brevity penalty against each image's closest reference length (the
    shorter on a tie). COCO's 1e-15 / 1e-9 guards are kept: no 4-gram match gives ~0, not an error.

    references: image id -> reference captions; candidates: image id -> one generated caption."""
    tiny, small = 1e-15, 1e-9
    correct, guess = [0] * 4, [0] * 4
    test_len = ref_len = 0
    for cand, refs in _tokenized(references, candidates):
        max_ref = Counter()
        for r in refs:
            max_ref |= _ngrams(r)  # union = elementwise max: the clip for each n-gram
        for gram, count in _ngrams(cand).items():
            correct[len(gram) - 1] += min(count, max_ref[gram])
        for k in range(4):
            guess[k] += max(0, len(cand) - k)
        test_len += len(cand)
        ref_len += min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
    score = math.prod((c + tiny) / (g + small) for c, g in zip(correct, guess)) ** 0.25
    ratio = (test_len + tiny) / (ref_len + small)
    return score * math.exp(1 - 1 / ratio) if ratio < 1 else score


def cider_d(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str],
            sigma: float = 6.0) -> float:
    """CIDEr-D as COCO computes it (its `Cider` class): per n = 1..4, TF-IDF vectors with document
    frequencies over the references of *this* evaluated set (so a split's score depends on the
    split), candidate weights clipped at the reference's, cosine similarity times a gaussian
    length penalty exp(-delta^2 / 2 sigma^2); mean over n and over references, x10, mean over
    images. A perfect caption scores 10 only when its n-grams are rare in the set."""
    pairs = _tokenized(references, candidates)
    df = Counter()
    for _, refs in pairs:
        df.update({gram for r in refs for gram in _ngrams(r)})
    log_images = math.log(len(pairs))

    def vectors(words):
        """Per n: {gram: tf-idf} and its norm; and the length in words."""
        vec = [{} for _ in range(4)]
        for gram, tf in _ngrams(words).items():
            vec[len(gram) - 1][gram] = tf * (log_images - math.log(max(1.0, df[gram])))
        norms = [math.sqrt(sum(w * w for w in v.values())) for v in vec]
        return vec, norms, len(words)

    total = 0.0
    for cand, refs in pairs:
        c_vec, c_norm, c_len = vectors(cand)
        score = 0.0
        for ref in refs:
            r_vec, r_norm, r_len = vectors(ref)
            penalty = math.exp(-((c_len - r_len) ** 2) / (2 * sigma ** 2))
            for n in range(4):
                dot = sum(min(w, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0) for g, w in c_vec[n].items())
                if c_norm[n] and r_norm[n]:
                    dot /= c_norm[n] * r_norm[n]
                score += dot * penalty
        total += score / 4 / len(refs) * 10.0
    return total / len(pairs)


# --- VQA ------------------------------------------------------------------------------------

# The official tables (vqaEval.py), verbatim but for its capitalised keys ("Im", "Ive", ...),
# which can never match the lowercased text they are looked up in.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "isnt": "isn't", "itd": "it'd",
    "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am",
    "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't",
    "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",  # sic: the official table maps it this way
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: a lookahead, so every '.' not before a digit goes
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")


def normalize_answer(text: str) -> str:
    """The official VQA answer processing: punctuation (deleted where it touches a space or the
    answer has a digit,digit comma; else a space), periods not before a digit, then lowercase,
    number words to digits, articles dropped, missing apostrophes of contractions restored."""
    if not isinstance(text, str):
        raise TypeError(f"answer must be a str, got {type(text).__name__}: {text!r}")
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _PUNCT:
        glued = (p + " " in text or " " + p in text) or _DIGIT_COMMA_DIGIT.search(text) is not None
        out = out.replace(p, "" if glued else " ")
    out = _PERIOD.sub("", out)
    words = [_NUMBERS.get(w, w) for w in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQAv2 accuracy of one answer: min(#humans who gave it / 3, 1), averaged over the subsets
    that leave out one of the (10) human answers. Both sides are normalised (normalize_answer).
    With a single reference answer (synthetic data) this is exact match."""
    if isinstance(answers, str) or not answers:
        raise ValueError(f"answers must be a non-empty list of human answers, got {answers!r}")
    pred = normalize_answer(prediction)
    hits = [normalize_answer(a) == pred for a in answers]
    if len(hits) == 1:
        return float(hits[0])
    total = sum(hits)
    return sum(min(1.0, (total - h) / 3) for h in hits) / len(hits)


def vqa_scores(predictions: Mapping[Hashable, str], answers: Mapping[Hashable, Sequence[str]]) -> dict:
    """Question id -> vqa_accuracy, for every question in `answers` (each must be predicted)."""
    if missing := [q for q in answers if q not in predictions]:
        raise ValueError(f"no predicted answer for question ids {missing[:5]} ({len(missing)} in all)")
    out = {}
    for q, human in answers.items():
        try:
            out[q] = vqa_accuracy(predictions[q], human)
        except (ValueError, TypeError) as e:
            raise ValueError(f"question id {q!r}: {e}") from e
    return out


def mean_by(scores: Mapping[Hashable, float], groups: Mapping[Hashable, str]) -> dict[str, float]:
    """Mean score per group (question type, answer type, seen / held-out combination), plus
    "overall" over all scored ids. Every scored id needs a group."""
    if not scores:
        raise ValueError("no scores to average")
    if missing := [k for k in scores if k not in groups]:
        raise ValueError(f"no group for ids {missing[:5]} ({len(missing)} in all)")
    by = defaultdict(list)
    for k, s in scores.items():
        by[str(groups[k])].append(float(s))
    return {"overall": sum(scores.values()) / len(scores)} | {g: sum(v) / len(v) for g, v in sorted(by.items())}


# --- text -----------------------------------------------------------------------------------

def perplexity(nll_sum: float, count: int) -> float:
    """exp(mean token NLL in nats); inf when that overflows."""
    if count <= 0:
        raise ValueError(f"perplexity of {count} tokens")
    mean = nll_sum / count
    return math.exp(mean) if mean < 709.0 else math.inf


def text_nll(model, documents: Sequence, batch_size: int = 16) -> tuple[float, int]:
    """Summed next-token NLL (nats) and number of predicted tokens of text documents (arrays of
    text ids), laid out as in training ([BOS] + text) and scored by the training loss; feed the
    pair to `perplexity`. Each document must fit the model's context."""
    import torch  # here only: the metrics above need no torch

    from gato.data.layout import document
    from gato.data.sampling import collate
    from gato.training.loss import masked_loss, target_mask

    tm, context = model.cfg.token_map, model.cfg.context
    seqs = [document(ids, tm) for ids in documents]
    if not seqs:
        raise ValueError("no documents to score")
    for i, s in enumerate(seqs):
        if len(s) > context:
            raise ValueError(f"document {i} has {len(s)} positions with BOS; the model's context is {context}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start:start + batch_size]
                batch = collate(chunk, max(len(s) for s in chunk), tm).to(device)
                logits, _ = model(*batch.inputs(), logits_at=target_mask(batch.loss_mask))
                _, groups = masked_loss(logits, batch.ids, batch.kinds, batch.loss_mask)
                s, n = groups["text"].tolist()
                nll, count = nll + s, count + int(n)
    finally:
        model.train(was_training)
    return nll, count
