"""`gato tokenizer train`: the SentencePiece model behind the text ids (gato/tokenization/text.py
trains and loads it; the committed default is made by this command)."""

from __future__ import annotations

from pathlib import Path

from gato.tokenization.text import TextTokenizer, build_default_corpus, train_tokenizer


def tokenizer_train(out: Path, vocab_size: int = 4096, input: list[Path] | None = None, force: bool = False) -> Path:
    """Train a SentencePiece text tokenizer.

    Args:
        out: Where to write the .model file.
        vocab_size: Number of pieces (>= 300), including unk, EOS and the 256 byte pieces.
        input: UTF-8 text files, one document each, or .jsonl files of {"text": ...} documents
            (e.g. DIR/text/corpus/train.jsonl from `gato collect text`). Default: text that ships
            with Python.
        force: replace OUT if it exists (otherwise an error: a checkpoint's text ids depend on it).
    """
    from gato.data.vl.formats import read_documents

    if Path(out).exists() and not force:
        raise ValueError(f"--out {out} exists; pass --force to replace it")
    if input is None:
        texts = build_default_corpus()
    else:
        texts = []
        for path in input:
            try:
                texts += read_documents(path)
            except FileNotFoundError:
                raise FileNotFoundError(f"input file not found: {path}") from None
    path = train_tokenizer(texts, vocab_size, out)
    print(f"wrote {path} (vocab_size {TextTokenizer.from_file(path).vocab_size})")
    return path
