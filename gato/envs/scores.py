"""Reference scores: each task's expert and uniformly random policy, measured by `gato scores`
(gato/evaluation/reference.py).

Evaluation normalises returns with them: (score - random) / (expert - random). They live in one
versioned JSON file shipped with the package (gato/envs/scores.json); this module reads and
writes it (files only: the data layer filters demonstrations by these returns).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path


from gato.io import write_text

VERSION = 1
DEFAULT_FILE = Path(str(resources.files("gato.envs") / "scores.json"))


def scores_file_id(path: Path | None = None) -> dict:
    """Which reference scores a result was normalised with: the file's format version and hash."""
    path = Path(path or DEFAULT_FILE)
    return {"version": VERSION, "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None}


def load_scores(path: Path | None = None) -> dict[str, dict]:
    """Task name -> {"expert": {mean, std, episodes, ...}, "random": {...}, "observation": str,
    "action": str}; empty if the file does not exist."""
    path = Path(path or DEFAULT_FILE)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid scores file ({e})") from e
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: scores file version {data.get('version')!r}, expected {VERSION}")
    return data["tasks"]


def write_scores(path: Path, table: dict) -> None:
    write_text(path, json.dumps({"version": VERSION, "tasks": dict(sorted(table.items()))}, indent=1) + "\n")
