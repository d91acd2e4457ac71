"""Text tokenizer: a SentencePiece model whose round trip is exact for any `str`.

Gato tokenizes text with SentencePiece; its ids fill [0, V) of the token map. BOS and padding
are ids of gato's own `TokenMap`, so the model defines only unk (0), EOS (1) and 256 byte
pieces (byte fallback: no text is ever unknown). The committed default model is trained
offline on English text that ships with Python (3.11.7), so it needs no download:

    gato tokenizer train --out gato/assets/text-4k.model --vocab-size 4096
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.resources
import inspect
import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pydoc_data.topics
import sentencepiece as spm

from gato.io import atomic_write

MIN_VOCAB = 300  # unk + EOS + 256 byte pieces, and some room for real pieces
META = "\u2581"  # SentencePiece's space marker: a literal one in the text must go as bytes

# Imported for their docstrings only: no side effects, no GUI, no network.
CORPUS_MODULES = sorted("""
    abc argparse array ast base64 bisect calendar cmath codecs collections colorsys contextlib
    copy csv dataclasses datetime decimal difflib enum fnmatch fractions functools gettext glob
    hashlib heapq hmac html http.client inspect io ipaddress itertools json locale logging math
    mimetypes operator os pathlib pickle pprint queue random re secrets shlex shutil socket
    sqlite3 statistics string struct subprocess tarfile tempfile textwrap threading time timeit
    typing unittest urllib.parse uuid warnings weakref zipfile zlib
""".split())


def _docstrings(module) -> Iterable[str]:
    """The docstrings of a module, its public classes and functions, and their public methods."""
    yield inspect.getdoc(module) or ""
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        yield inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            for method in sorted(m for m in vars(obj) if not m.startswith("_")):
                if inspect.isroutine(member := getattr(obj, method, None)):
                    yield inspect.getdoc(member) or ""


def _stdlib_texts() -> list[str]:
    """Pydoc help topics and the docstrings of CORPUS_MODULES, as this interpreter has them."""
    texts = list(pydoc_data.topics.topics.values())
    with warnings.catch_warnings():  # typing.io and friends warn when touched
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in CORPUS_MODULES:
            texts.extend(_docstrings(importlib.import_module(name)))
    return texts


def build_default_corpus() -> list[str]:
    """English documents shipped with Python: pydoc help topics and stdlib docstrings, sorted.

    Read in a fresh, isolated interpreter: the calling process may have patched the stdlib
    (pytest replaces threading.excepthook), which would change the corpus and the model.
    """
    child = subprocess.run([sys.executable, "-I", __file__], capture_output=True, check=True)
    texts = json.loads(child.stdout)
    return sorted({t.strip() for t in texts if len(t.strip()) >= 32})


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_path: Path) -> Path:
    """Train a SentencePiece model on `texts` (documents) and write it atomically to `out_path`.

    Unigram: SentencePiece's default (the Gato paper names SentencePiece, not the algorithm).
    Documents are split into lines (SentencePiece skips over-long sentences); newlines encode
    as byte pieces. Single-threaded and unshuffled, so the same texts give the same bytes.
    """
    lines = [line for text in texts for line in text.split("\n") if line.strip()]
    if not lines:
        raise ValueError("cannot train a tokenizer on no text")
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be >= {MIN_VOCAB}, got {vocab_size}")
    model = io.BytesIO()  # in memory: a model_prefix would be recorded in the model's bytes
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model,
            model_type="unigram", vocab_size=vocab_size, hard_vocab_limit=True,
            byte_fallback=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=False, split_digits=True,
            unk_id=0, eos_id=1, bos_id=-1, pad_id=-1, max_sentence_length=1 << 16,
            num_threads=1, shuffle_input_sentence=False, minloglevel=2)
    except RuntimeError as e:
        chars = sum(map(len, lines))
        raise ValueError(f"cannot train a vocabulary of {vocab_size} on {chars} characters "
                         f"({len(lines)} lines): {e}") from e
    out_path = Path(out_path)
    atomic_write(out_path, lambda tmp: tmp.write_bytes(model.getvalue()))  # readers never see a partial model
    return out_path


class TextTokenizer:
    """A loaded SentencePiece model: str <-> int32 ids in [0, vocab_size)."""

    def __init__(self, model: bytes, source: str):
        self._model = bytes(model)
        self.source = source
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._model)
        except RuntimeError as e:
            raise ValueError(f"{source} is not a SentencePiece model") from e
        byte_ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
        if not all(self._sp.is_byte(i) for i in byte_ids) or self._sp.eos_id() < 0:
            raise ValueError(f"{source}: the model needs byte_fallback and an EOS piece")
        self._meta_ids = [byte_ids[b] for b in META.encode()]
        self.vocab_size: int = self._sp.get_piece_size()
        self.eos_id: int = self._sp.eos_id()
        self.sha256: str = hashlib.sha256(self._model).hexdigest()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TextTokenizer:
        """Load a `.model` file."""
        try:
            model = Path(path).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"tokenizer model not found: {path}") from None
        return cls(model, str(path))

    @classmethod
    @functools.lru_cache(maxsize=1)
    def default(cls) -> TextTokenizer:
        """The committed 4096-piece model (shared instance)."""
        model = (importlib.resources.files("gato") / "assets" / "text-4k.model").read_bytes()
        return cls(model, "default:text-4k")

    def encode(self, text: str, eos: bool = False) -> np.ndarray:
        """Ids of `text`, then EOS if `eos` (training texts end with it, so generation can stop).
        Literal U+2581 goes as bytes so it survives decoding."""
        if isinstance(text, (bytes, bytearray)):
            raise TypeError("encode takes str; decode bytes (e.g. text.decode('utf-8')) first")
        if not isinstance(text, str):
            raise TypeError(f"encode takes str, got {type(text).__name__}")
        parts = text.split(META)
        ids = self._sp.encode(parts[0])
        for part in parts[1:]:
            ids += self._meta_ids + self._sp.encode(part)
        return np.asarray(ids + [self.eos_id] if eos else ids, dtype=np.int32)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """Text of 1-D ids (EOS decodes to ""); ValueError names an id outside [0, vocab_size)."""
        arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
        if arr.size == 0:
            return ""
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"decode takes a 1-D sequence of ints, got {arr.dtype} {arr.shape}")
        bad = arr[(arr < 0) | (arr >= self.vocab_size)]
        if bad.size:
            raise ValueError(f"id {int(bad[0])} is outside the text ids [0, {self.vocab_size})")
        return self._sp.decode(arr.tolist())

    def reference(self) -> dict:
        """What a checkpoint records to name this tokenizer."""
        return {"source": self.source, "sha256": self.sha256, "vocab_size": self.vocab_size}

    def to_bytes(self) -> bytes:
        """The serialized model."""
        return self._model


if __name__ == "__main__":  # the fresh interpreter of build_default_corpus
    json.dump(_stdlib_texts(), sys.stdout)
