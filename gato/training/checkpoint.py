"""Checkpoint I/O: safetensors + JSON, atomic writes, exact resume.

Why this shape:
- No pickle. ``torch.load`` on a user file can run arbitrary code, so tensors go to
  safetensors and everything else (config, optimizer hyper-parameters, RNG states, data
  cursors) to plain JSON. The nested trainer state is split by :func:`flatten_state` into
  a flat tensor dict plus a JSON skeleton that keeps int dict keys, tuples, numpy arrays
  and numpy scalars exactly, so an optimizer resumes bit-for-bit.
- Atomic. A checkpoint is written into a sibling ``<name>.tmp-<pid>`` folder, fsynced,
  then renamed into place; a killed job leaves at most a temp folder that
  :func:`latest_checkpoint` ignores, never a half-written ``step_*`` folder.
- Never a partial load. Every file is validated (format marker, version, key set,
  shapes, dtypes) before anything is handed back or copied into a model, and bad input
  raises :class:`CheckpointError` naming the file and what was expected.
- Checksummed. ``config.json`` records the sha256 of ``model.safetensors``; loading
  compares it, so flipped bytes inside a tensor (which parse fine) are an error, not a
  model that silently acts badly. Checkpoints written before the field load unchecked.

Skeleton JSON may hold ``NaN``/``Infinity`` tokens (Python's json default) for non-finite floats.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = "gato-checkpoint"
VERSION = 1
_WEIGHTS, _CONFIG, _STATE, _STATE_JSON = "model.safetensors", "config.json", "state.safetensors", "state.json"
_SHA256 = "weights_sha256"  # config.json: the sha256 of model.safetensors
_RESERVED = ("format", "version", _SHA256)
_STEP_RE = re.compile(r"step_(\d{8,})")
_NP_SCALARS = (np.bool_, np.integer, np.floating)


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, foreign, or does not match."""


def checkpoint_name(step: int) -> str:
    """Folder name for a training step, e.g. ``step_00000042``."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"step_{step:08d}"


def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split ``state`` into ``(tensors keyed by path, JSON-able skeleton)``.

    Tensors become ``{"__tensor__": key}`` and numpy arrays ``{"__ndarray__": key}``;
    tuples become ``{"__tuple__": [...]}``, numpy scalars ``{"__npscalar__": [dtype, value]}``;
    dicts with a non-str key or a key starting with ``"__"`` become ``{"__dict__": [[k, v], ...]}``
    so int keys survive and markers can never be confused with user data.
    """
    tensors: dict[str, torch.Tensor] = {}

    def store(path: str, tensor: torch.Tensor) -> str:
        key, n = path or "_", 1
        while key in tensors:
            key, n = f"{path or '_'}#{n}", n + 1
        tensors[key] = tensor.detach()
        return key

    def enc(obj: Any, path: str) -> Any:
        def sub(k: str | int) -> str:
            return f"{path}/{k}" if path else str(k)

        if isinstance(obj, torch.Tensor):
            return {"__tensor__": store(path, obj)}
        if isinstance(obj, np.ndarray):
            try:
                tensor = torch.from_numpy(np.require(obj, requirements="CW"))  # keeps 0-d shape
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"state[{path!r}]: unsupported numpy dtype {obj.dtype}") from e
            return {"__ndarray__": store(path, tensor)}
        if isinstance(obj, _NP_SCALARS):
            return {"__npscalar__": [obj.dtype.str, obj.item()]}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, tuple):
            return {"__tuple__": [enc(v, sub(i)) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [enc(v, sub(i)) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            for k in obj:
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise CheckpointError(f"state[{path!r}]: dict key {k!r} must be str or int")
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: enc(v, sub(k)) for k, v in obj.items()}
            return {"__dict__": [[k, enc(v, sub(k))] for k, v in obj.items()]}
        raise CheckpointError(f"state[{path!r}]: cannot checkpoint a value of type {type(obj).__name__}")

    return tensors, enc(state, "")


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Inverse of :func:`flatten_state`."""

    def tensor(key: Any) -> torch.Tensor:
        if key not in tensors:
            raise CheckpointError(f"state skeleton refers to tensor {key!r}, which is missing")
        return tensors[key]

    markers = {
        "__tensor__": tensor,
        "__ndarray__": lambda v: tensor(v).numpy(),
        "__tuple__": lambda v: tuple(dec(x) for x in v),
        "__npscalar__": lambda v: np.dtype(v[0]).type(v[1]),
        "__dict__": lambda v: {k: dec(x) for k, x in v},
    }

    def dec(obj: Any) -> Any:
        if isinstance(obj, list):
            return [dec(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if len(obj) == 1 and (tag := next(iter(obj))).startswith("__"):
            if tag not in markers:
                raise CheckpointError(f"state skeleton has unknown marker {tag!r}")
            return markers[tag](obj[tag])
        return {k: dec(v) for k, v in obj.items()}

    return dec(skeleton)


def save_checkpoint(directory: Path, *, weights: dict[str, torch.Tensor], meta: dict, state: dict | None = None,
                    files: dict[str, bytes] | None = None) -> Path:
    """Atomically write a checkpoint folder (replacing one of the same name) and return it.

    ``meta`` must be JSON-able; its keys ``format``, ``version`` and ``weights_sha256`` are
    reserved (config.json records the weights' checksum under the last). ``files`` are
    extra files written beside the weights (the text tokenizer, so a checkpoint is self-contained;
    a name may hold folders: "prompts/control/cartpole/card.json"). An existing folder
    is renamed aside to ``<name>.old-<pid>``, the new one renamed in, then the old one deleted; a
    crash between those renames leaves both under ignored names, never a half-written ``<name>``.
    """
    directory = Path(directory)
    if set(_RESERVED) & meta.keys():
        raise CheckpointError(f"meta keys {', '.join(map(repr, _RESERVED))} are reserved for the checkpoint format")
    json.dumps(meta)  # fails early if not JSON-able
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
    for stale in (tmp, old):  # left by a killed job that had our pid
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.mkdir()
        _write_tensors(tmp / _WEIGHTS, weights)
        if state is not None:
            tensors, skeleton = flatten_state(state)
            _write_tensors(tmp / _STATE, tensors)
            _write_text(tmp / _STATE_JSON, json.dumps({"format": FORMAT, "version": VERSION, "skeleton": skeleton}))
        for name, data in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
            _fsync(tmp / name)
        config = {**meta, "format": FORMAT, "version": VERSION, _SHA256: _sha256(tmp / _WEIGHTS)}
        _write_text(tmp / _CONFIG, json.dumps(config, indent=2))  # last: its presence marks a complete folder
        _fsync(tmp)
        if directory.exists():
            os.replace(directory, old)
            try:
                os.replace(tmp, directory)
            except BaseException:
                os.replace(old, directory)
                raise
            shutil.rmtree(old)
        else:
            os.replace(tmp, directory)
        _fsync(directory.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_meta(directory: Path) -> dict:
    """Read and validate ``config.json``; returns the ``meta`` given to :func:`save_checkpoint`."""
    config = _read_json(_existing(directory, _CONFIG))
    return {k: v for k, v in config.items() if k not in _RESERVED}


def weights_sha256(directory: Path) -> str:
    """The sha256 of a checkpoint's weights: what names the model a result was measured on."""
    return _sha256(_existing(Path(directory), _WEIGHTS))


def load_weights(directory: Path, expected: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Load ``model.safetensors``, checked against the checksum in ``config.json`` (when it
    records one); if ``expected`` is given, keys, shapes and dtypes must match it."""
    path = _existing(directory, _WEIGHTS)
    weights = _read_tensors(path)
    config = Path(directory) / _CONFIG
    recorded = _read_json(config).get(_SHA256) if config.is_file() else None
    if recorded is not None and (got := _sha256(path)) != recorded:
        raise CheckpointError(f"{path}: sha256 {got} differs from the {recorded} recorded in {config}: the "
                              "weights file was changed or corrupted after it was written")
    if expected is not None:
        _check_matches(path, weights, expected)
    return weights


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """(1 - weight) * a + weight * b, tensor by tensor, computed in float32 and stored in a's dtypes:
    a point on the line between two checkpoints of one model (WiSE-FT, Wortsman et al. 2022)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight {weight} is outside [0, 1]")
    if a.keys() != b.keys():
        raise CheckpointError(f"the checkpoints hold different tensors: only in one: "
                              f"{', '.join(sorted(a.keys() ^ b.keys()))}")
    differ = [f"{k} {list(a[k].shape)} vs {list(b[k].shape)}" for k in a if a[k].shape != b[k].shape]
    if differ:
        raise CheckpointError("the checkpoints' tensors differ in shape: " + "; ".join(differ))
    return {k: torch.lerp(a[k].float(), b[k].float(), weight).to(a[k].dtype) for k in a}


def weights_shapes(directory: Path) -> dict[str, list[int]]:
    """Each tensor's shape in ``model.safetensors``, read from its header alone (nothing is
    loaded; safetensors checks the header against the file's size)."""
    path = _existing(directory, _WEIGHTS)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_slice(k).get_shape() for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({e})") from e


def load_model_weights(model: torch.nn.Module, directory: Path) -> None:
    """Validate the checkpoint against ``model`` first, then copy it in (no partial load)."""
    model.load_state_dict(load_weights(directory, expected=model.state_dict()), strict=True)


def load_state(directory: Path) -> dict:
    """Load the trainer state (``state.json`` + ``state.safetensors``) back into its nested form."""
    doc = _read_json(_existing(directory, _STATE_JSON))
    if "skeleton" not in doc:
        raise CheckpointError(f"{Path(directory) / _STATE_JSON}: no 'skeleton' entry")
    tensors = _read_tensors(_existing(directory, _STATE))
    try:
        return unflatten_state(tensors, doc["skeleton"])
    except (TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{Path(directory) / _STATE_JSON}: corrupt state skeleton: {e}") from e


def is_checkpoint(path: Path) -> bool:
    """Whether `path` is a complete checkpoint folder (its config and weights are there)."""
    path = Path(path)
    return (path / _CONFIG).is_file() and (path / _WEIGHTS).is_file()


def latest_checkpoint(run_dir: Path) -> Path | None:
    """Newest complete ``step_<digits>`` folder in ``run_dir``, or None (temp/incomplete ones skipped)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in run_dir.iterdir()
        if (m := _STEP_RE.fullmatch(p.name)) and is_checkpoint(p)
    ]
    return max(found)[1] if found else None


def _existing(directory: Path, name: str) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint folder {directory} does not exist")
    if not (directory / name).is_file():
        raise CheckpointError(f"checkpoint folder {directory} has no {name}")
    return directory / name


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: invalid or truncated JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: not a gato checkpoint (expected format {FORMAT!r}, found {found!r})")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {version!r} (this gato reads <= {VERSION})")
    return doc


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({e})") from e
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gato checkpoint (safetensors metadata has no format={FORMAT!r})")
    return tensors


def _check_matches(path: Path, got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing = sorted(expected.keys() - got.keys())
    unexpected = sorted(got.keys() - expected.keys())
    wrong = [
        f"{k}: expected {tuple(e.shape)} {e.dtype}, got {tuple(got[k].shape)} {got[k].dtype}"
        for k, e in expected.items()
        if k in got and (got[k].shape != e.shape or got[k].dtype != e.dtype)
    ]
    problems = [
        f"{what} ({len(items)}): {', '.join(items[:5])}"
        + (f" (and {len(items) - 5} more)" if len(items) > 5 else "")
        for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape/dtype mismatches", wrong))
        if items
    ]
    if problems:
        raise CheckpointError(f"{path} does not match the model: " + "; ".join(problems))


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """save_file needs contiguous, CPU, non-aliased tensors: clone any that share storage (tied weights)."""
    seen: set[int] = set()
    ready = {}
    for k, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr and ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        ready[k] = t
    save_file(ready, str(path), metadata={"format": FORMAT})
    _fsync(path)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    _fsync(path)


def _fsync(path: Path) -> None:
    """Flush a file's or folder's contents (a folder: its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
