"""Text tokenizer: exact round trip, the committed default model, training, and bad inputs."""

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import tyro
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gato.commands.tokenizer import tokenizer_train
from gato.tokenization.text import (
    TextTokenizer,
    build_default_corpus,
    train_tokenizer,
)

ASSET = Path(__file__).parents[1] / "gato" / "assets" / "text-4k.model"
# Checkpoints name the tokenizer by this digest: changing the committed model must be deliberate.
TEXT_4K_SHA256 = "6c15f099753888a317e17fb3af3518a0af564dbc841cbe075b8e9b2b2895c7b3"
BUILT_WITH_PYTHON = "3.11.7"  # the corpus (docstrings) differs between Python releases


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return build_default_corpus()


@settings(max_examples=300, deadline=None)
@given(st.text())
@example("")
@example("  two leading spaces, two trailing  ")
@example("tabs\tand\nnewlines\r\n\n")
@example("unicode: é ß 漢字 😀👍🏽 \x00 \u2028")
@example("literal \u2581 marker \u2581\u2581")
def test_round_trip_is_exact(text):
    tok = TextTokenizer.default()
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ((ids >= 0) & (ids < tok.vocab_size)).all()
    assert tok.decode(ids) == text


def test_default_model():
    tok = TextTokenizer.default()
    assert (tok.vocab_size, tok.eos_id, tok.source) == (4096, 1, "default:text-4k")
    assert tok.sha256 == hashlib.sha256(ASSET.read_bytes()).hexdigest() == TEXT_4K_SHA256
    first, second = TextTokenizer.from_file(ASSET), TextTokenizer.from_file(ASSET)
    assert first.sha256 == second.sha256 == tok.sha256
    assert TextTokenizer.default() is tok
    assert tok.to_bytes() == ASSET.read_bytes()
    ref = json.loads(json.dumps(tok.reference()))
    assert ref == {"source": "default:text-4k", "sha256": TEXT_4K_SHA256, "vocab_size": 4096}


def test_default_model_compresses_english():
    text = "Return the number of items in a sequence or collection, and raise an error otherwise."
    assert len(TextTokenizer.default().encode(text)) < len(text) / 3


def test_corpus_is_deterministic_and_clean(corpus):
    assert corpus == build_default_corpus()
    assert corpus == sorted(set(corpus))
    assert len(corpus) > 1000 and 300_000 < sum(map(len, corpus)) < 5_000_000
    assert all(doc == doc.strip() and len(doc) >= 32 for doc in corpus)


@pytest.mark.skipif(platform.python_version() != BUILT_WITH_PYTHON, reason="corpus differs")
def test_committed_model_is_reproducible(corpus, tmp_path):
    out = train_tokenizer(corpus, 4096, tmp_path / "text-4k.model")
    assert out.read_bytes() == ASSET.read_bytes()


def test_train_tiny_model(corpus, tmp_path):
    out = tmp_path / "new" / "dir" / "tiny.model"
    assert train_tokenizer(corpus[:300], 400, out) == out
    first = out.read_bytes()
    train_tokenizer(corpus[:300], 400, out)
    assert out.read_bytes() == first  # deterministic
    assert [p.name for p in out.parent.iterdir()] == ["tiny.model"]  # no temporary left over
    tok = TextTokenizer.from_file(out)
    assert (tok.vocab_size, tok.eos_id, tok.source) == (400, 1, str(out))
    for text in ["Hello,  world!\n\tindented", "naïve 😀 \u2581", corpus[0]]:
        assert tok.decode(tok.encode(text)) == text


def test_train_rejects_bad_arguments(corpus, tmp_path):
    out = tmp_path / "m.model"
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer([], 400, out)
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer(["  ", "\n\n"], 400, out)
    with pytest.raises(ValueError, match="299"):
        train_tokenizer(corpus[:10], 299, out)
    with pytest.raises(ValueError, match=r"vocabulary of 5000 on 23 characters"):
        train_tokenizer(["hello world, hello you."], 5000, out)
    assert not out.exists()


def test_from_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.model"):
        TextTokenizer.from_file(tmp_path / "missing.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a model \x00\xff" * 8)
    with pytest.raises(ValueError, match="garbage.model is not a SentencePiece model"):
        TextTokenizer.from_file(garbage)


def test_rejects_model_without_byte_fallback(corpus, tmp_path):
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus[:300]), vocab_size=400,
                                   model_prefix=str(tmp_path / "plain"), minloglevel=2)
    with pytest.raises(ValueError, match="byte_fallback"):
        TextTokenizer.from_file(tmp_path / "plain.model")


def test_encode_rejects_non_str():
    tok = TextTokenizer.default()
    with pytest.raises(TypeError, match="decode"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match="int"):
        tok.encode(42)


def test_decode_checks_ids():
    tok = TextTokenizer.default()
    assert tok.decode([]) == "" and tok.decode(np.zeros(0, np.int32)) == ""
    assert tok.decode(tok.encode("abc").tolist()) == "abc"
    with pytest.raises(ValueError, match="id 4096 "):
        tok.decode([5, 4096, 7])
    with pytest.raises(ValueError, match="id -1 "):
        tok.decode(np.array([-1, 5]))
    with pytest.raises(TypeError):
        tok.decode([1.5])


def test_tokenizer_train_command(tmp_path, capsys, corpus):
    docs = []
    for i, doc in enumerate(corpus[:300]):
        docs.append(tmp_path / f"doc{i}.txt")
        docs[-1].write_text(doc, encoding="utf-8")
    out = tmp_path / "cli.model"
    args = ["--out", str(out), "--vocab-size", "400", "--input", *map(str, docs)]
    assert tyro.cli(tokenizer_train, args=args) == out
    assert TextTokenizer.from_file(out).vocab_size == 400
    assert str(out) in capsys.readouterr().out
    with pytest.raises(ValueError, match="exists; pass --force to replace it"):
        tokenizer_train(out, 400, docs)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        tokenizer_train(out, 400, [docs[0], tmp_path / "nope.txt"], force=True)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt"):
        tokenizer_train(out, 400, [docs[0], latin1], force=True)


def test_eos_is_appended_only_when_asked():
    tok = TextTokenizer.default()
    plain, ended = tok.encode("a caption"), tok.encode("a caption", eos=True)
    assert list(ended) == list(plain) + [tok.eos_id] and tok.eos_id not in plain
    assert tok.decode(ended) == "a caption"
