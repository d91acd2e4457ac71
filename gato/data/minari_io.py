"""Minari (Farama's offline RL datasets) <-> our dataset layout, both ways, on local files only.

Import: a local Minari dataset (a folder, or an id under the local Minari root,
MINARI_DATASETS_PATH or ~/.minari/datasets) becomes a task folder of our layout (card + Parquet
shards, gato.data.storage), so `gato train --data ROOT` trains on it. Nothing is downloaded.
Export: a task folder of ours becomes a Minari dataset (arrow format, images stored raw, not as
JPEG) that `minari.load_dataset` / `minari.MinariDataset(path)` read.

How the two models of an episode meet:
- Minari holds T+1 observations per episode, ours T steps plus, since format version 2, the final
  observation apart (`Episode.final_observation`). Import keeps Minari's last observation there;
  export writes ours, and for an episode recorded without one (format version 1) repeats its last
  stored observation, marked in the Minari metadata (dataset: gato.final_observation; episode:
  gato_final_observation = "repeated").
- Minari's per-step terminations and truncations; ours one `truncated` per episode (format 2).
  Import: truncated when the last step is truncated and not terminated, or neither (the episode
  was cut without the task ending it). Export: the last step is terminated or truncated as
  recorded; without a record (format 1), truncated when the episode is `max_steps` long (the
  task's cap, when known), else terminated; the metadata says which episodes were derived so.
- Actions: Minari's are what the environment ran. Where our episodes hold separate labels
  (noise-injected or DAgger data: `Episode.executed`), export writes the executed actions and the
  labels as the per-step info `gato_label_actions` (T+1 rows, the last repeated); import reads
  that info back as labels, so the round trip keeps both.

The spaces: for a task of our registry the caller passes its spec and the dataset's spaces must
be equal to it (`compare_spaces`); otherwise the dataset's own spaces are used, and must be ones
the token map expresses (`check_spaces`). Either error names the space.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from gato.config import ModelConfig
from gato.data.episode import Episode, TaskSpec
from gato.data.storage import DatasetWriter, TaskDataset, columns, task_folder
from gato.tokenization.images import grid_shape
from gato.tokenization.spaces import ACTION, OBSERVATION, leaves, modality, token_ranges
from gato.tokenization.vocab import TokenMap

LABELS_INFO = "gato_label_actions"  # per-step info holding our labels where they differ from the actions
DATA_FORMAT = "arrow"


def minari():
    """The minari package, or an error saying how to install it."""
    try:
        import minari as m
    except ImportError:
        raise ImportError("reading or writing Minari datasets needs the minari package: "
                          "pip install 'gato-agent[minari]'") from None
    return m


def minari_root() -> Path:
    """The local Minari root: MINARI_DATASETS_PATH, else ~/.minari/datasets (as Minari's own)."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def data_path(source: str | Path) -> Path:
    """The `data` folder (holding metadata.json) of a Minari dataset given as a folder (the
    dataset's or its data folder) or as a dataset id under the local Minari root."""
    p = Path(source)
    for candidate in (p / "data", p):
        if (candidate / "metadata.json").is_file():
            return candidate
    if p.is_dir():
        raise FileNotFoundError(f"{p}: not a Minari dataset (no metadata.json in it or in {p / 'data'})")
    local = minari_root() / str(source) / "data"
    if (local / "metadata.json").is_file():
        return local
    raise FileNotFoundError(f"{source}: no such folder, and no Minari dataset of that id under {minari_root()} "
                            "(MINARI_DATASETS_PATH); nothing is downloaded: fetch it first (`minari download ID`)")


# ---------------------------------------------------------------- spaces

def _where(role: str, path: tuple) -> str:
    return f"{role} space" + "".join(f"[{k!r}]" for k in path)


def _span(leaf: spaces.Space) -> int:
    """How many ids the values of a discrete leaf take (the widest element)."""
    if isinstance(leaf, spaces.Discrete):
        return int(leaf.n)
    if isinstance(leaf, spaces.MultiDiscrete):
        return int(np.max(leaf.nvec)) if leaf.nvec.size else 0
    if isinstance(leaf, spaces.MultiBinary):
        return 2
    span = np.asarray(leaf.high, np.float64) - np.asarray(leaf.low, np.float64) + 1.0
    return int(span.max()) if span.size else 0


def check_spaces(spec: TaskSpec, tm: TokenMap | None = None,
                 max_tokens: int = ModelConfig.max_local_positions) -> None:
    """Raise ValueError naming the space when the token map cannot express the task's spaces:
    a space type it has no tokens for, text or image actions, discrete values wider than its
    discrete ids, frames with other than 1 or 3 channels, more than one image or text part, or an
    observation of more than `max_tokens` tokens (the model's local position table)."""
    tm = tm or TokenMap()
    for role, space in ((OBSERVATION, spec.observation_space), (ACTION, spec.action_space)):
        for path, leaf in leaves(space):
            where = f"{spec.name}: {_where(role, path)} {leaf}"
            try:
                kind = modality(leaf, role)
            except TypeError:
                raise ValueError(f"{where}: the token map has no tokens for a {type(leaf).__name__} space") from None
            if role == ACTION and kind == "text":
                raise ValueError(f"{where}: text actions are not expressible (an action is a fixed number of tokens)")
            if kind == "discrete" and _span(leaf) > tm.num_discrete:
                raise ValueError(f"{where}: its values span {_span(leaf)} ids; the token map has "
                                 f"{tm.num_discrete} discrete ids")
            shape = getattr(leaf, "shape", None) or ()
            if role == OBSERVATION and isinstance(leaf, spaces.Box) and leaf.dtype == np.uint8 and len(shape) == 3 \
                    and min(shape[:2]) >= 16 and shape[2] not in (1, 3):
                raise ValueError(f"{where}: frames of {shape[2]} channels; images must be (H, W), (H, W, 1) or "
                                 "(H, W, 3)")
            if role == ACTION:
                try:
                    token_ranges(leaf, tm)
                except TypeError as e:
                    raise ValueError(f"{where}: not expressible as action tokens ({e})") from None
    try:
        columns(spec)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{spec.name}: observation space {spec.observation_space}: {e}") from None
    fixed = sum(int(np.prod(grid_shape(*leaf.shape[:2]))) if modality(leaf) == "image" else int(np.prod(leaf.shape))
                for _, leaf in leaves(spec.observation_space) if modality(leaf) != "text")
    if fixed > max_tokens:
        raise ValueError(f"{spec.name}: observation space {spec.observation_space} is {fixed} tokens an observation; "
                         f"the model's local position table holds {max_tokens}")


def _difference(ours: spaces.Space, theirs: spaces.Space, path: tuple = ()):
    """(path, our leaf, their leaf) of the first part where two spaces differ; None if equal."""
    if isinstance(ours, spaces.Dict) and isinstance(theirs, spaces.Dict) and set(ours.spaces) == set(theirs.spaces):
        return next((d for k in sorted(ours.spaces)
                     if (d := _difference(ours.spaces[k], theirs.spaces[k], path + (k,))) is not None), None)
    if isinstance(ours, spaces.Tuple) and isinstance(theirs, spaces.Tuple) and len(ours) == len(theirs):
        return next((d for i, (a, b) in enumerate(zip(ours.spaces, theirs.spaces))
                     if (d := _difference(a, b, path + (i,))) is not None), None)
    return None if ours == theirs else (path, ours, theirs)


def compare_spaces(spec: TaskSpec, observation_space: spaces.Space, action_space: spaces.Space, source: str) -> None:
    """Raise ValueError naming the space where a dataset's spaces differ from our task's."""
    for role, ours, theirs in ((OBSERVATION, spec.observation_space, observation_space),
                               (ACTION, spec.action_space, action_space)):
        diff = _difference(ours, theirs)
        if diff is not None:
            path, a, b = diff
            raise ValueError(f"{source}: its {_where(role, path)} is {b}, but {spec.name}'s is {a}; import it "
                             "under a task name of its own (not one of `gato tasks`) to keep the dataset's spaces")


# ---------------------------------------------------------------- values: per step <-> stacked

def _stack(space: spaces.Space, values: list) -> Any:
    """Per-step values -> Minari's layout: a dict / tuple of arrays (lists of str for text)."""
    if isinstance(space, spaces.Dict):
        return {k: _stack(s, [v[k] for v in values]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_stack(s, [v[i] for v in values]) for i, s in enumerate(space.spaces))
    if isinstance(space, spaces.Text):
        return [str(v) for v in values]
    return np.asarray(values, dtype=space.dtype).reshape(len(values), *space.shape)


def _unstack(space: spaces.Space, data: Any, n: int, what: str) -> list:
    """Minari's layout -> n per-step values; `what` names the data in errors."""
    if isinstance(space, spaces.Dict):
        parts = {k: _unstack(s, data[k], n, f"{what}[{k!r}]") for k, s in space.spaces.items()}
        return [{k: p[t] for k, p in parts.items()} for t in range(n)]
    if isinstance(space, spaces.Tuple):
        items = [data[str(i)] if isinstance(data, dict) else data[i] for i in range(len(space.spaces))]
        parts = [_unstack(s, d, n, f"{what}[{i}]") for i, (s, d) in enumerate(zip(space.spaces, items))]
        return [tuple(p[t] for p in parts) for t in range(n)]
    if isinstance(space, spaces.Text):
        if len(data) != n:
            raise ValueError(f"{what}: {len(data)} values, expected {n}")
        return [str(s) for s in data]
    arr = np.asarray(data)
    if arr.shape[:1] != (n,) or arr.size != n * int(np.prod(space.shape)):
        raise ValueError(f"{what}: shape {arr.shape}, expected {n} values of shape {space.shape}")
    return list(arr.reshape(n, *space.shape).astype(space.dtype, copy=False))


# ---------------------------------------------------------------- import

@dataclass
class MinariImport:
    task: str
    episodes: int
    steps: int
    source: str
    out: Path


def import_minari(source: str | Path, root: str | Path, task_name: str, spec: TaskSpec | None = None,
                  split: str = "train", shard_episodes: int = 16, force: bool = False) -> MinariImport:
    """Convert a local Minari dataset into task `task_name` of the dataset root `root`.

    `spec`: our registry task's spaces (the dataset's must equal them); None: the dataset's own
    spaces, checked against the token map. The split must be empty, or `force` replaces its shards
    (a killed import is redone with force)."""
    m = minari()
    path = data_path(source)
    ds = m.MinariDataset(path)
    obs_space, act_space = ds.observation_space, ds.action_space
    if spec is not None:
        compare_spaces(spec, obs_space, act_space, f"Minari dataset {source}")
        spec = TaskSpec(task_name, spec.observation_space, spec.action_space)
    else:
        spec = TaskSpec(task_name, obs_space, act_space)
        check_spaces(spec)
    folder = task_folder(root, task_name) / split
    old = sorted(folder.glob("shard-*.parquet")) if folder.is_dir() else []
    if old and not force:
        raise ValueError(f"{folder} already holds {len(old)} shards; pass --force to replace them, or choose "
                         "another --out or --split")
    for f in old:
        f.unlink()
    meta = ds.storage.metadata
    seeds = [md.get("seed") for md in ds.storage.get_episode_metadata(ds.episode_indices)]
    labelled = ds.total_episodes > 0 and LABELS_INFO in (next(iter(ds.iterate_episodes())).infos or {})
    card = {"source": "minari", "expert": str(meta.get("algorithm_name") or "minari"),
            "description": str(meta.get("description") or f"imported from the Minari dataset {ds.id}"),
            "minari": {"dataset_id": ds.id, "path": str(path.resolve()), "minari_version": ds.minari_version,
                       "data_format": meta.get("data_format"), "total_episodes": int(ds.total_episodes),
                       "total_steps": int(ds.total_steps)}}
    steps = count = 0
    with DatasetWriter(root, spec, card, split=split, shard_episodes=shard_episodes, executed=labelled,
                       final=True) as writer:
        for i, (ep, seed) in enumerate(zip(ds.iterate_episodes(), seeds)):
            episode = _from_minari(spec, ep, f"{source} episode {ep.id}", labelled)
            writer.add(episode, seed=int(seed) if seed is not None else None)
            steps, count = steps + len(episode), i + 1
    return MinariImport(task_name, count, steps, str(source), Path(root))


def _from_minari(spec: TaskSpec, ep, what: str, labelled: bool) -> Episode:
    rewards = np.asarray(ep.rewards, np.float32).reshape(-1)
    n = len(rewards)
    if n == 0:
        raise ValueError(f"{what}: no steps")
    obs = _unstack(spec.observation_space, ep.observations, n + 1, f"{what}: observations")
    actions = _unstack(spec.action_space, ep.actions, n, f"{what}: actions")
    executed = None
    if labelled:
        if LABELS_INFO not in (ep.infos or {}):
            raise ValueError(f"{what}: no info {LABELS_INFO!r}, which the dataset's first episode has")
        labels = np.asarray(ep.infos[LABELS_INFO])[:n]
        actions, executed = _unstack(spec.action_space, labels, n, f"{what}: {LABELS_INFO}"), actions
    term = np.asarray(ep.terminations, bool).reshape(-1)
    truncated = not (len(term) and term[-1])  # truncated, or cut without either flag
    return Episode(obs[:n], actions, rewards, executed, final_observation=obs[n], truncated=truncated)


# ---------------------------------------------------------------- export

@dataclass
class MinariExport:
    dataset_id: str
    path: Path
    episodes: int
    steps: int
    final_repeated: int  # episodes without a recorded final observation (the last one repeated)
    ending_derived: int  # episodes without a recorded truncation flag (derived from their length)


def default_dataset_id(task_name: str, split: str = "train") -> str:
    """gato/<domain>/<task>/<split>-v0: Minari's (namespace/)name-vN."""
    return f"gato/{task_name}/{split}-v0"


def export_minari(root: str | Path, task_name: str, out: str | Path | None = None, dataset_id: str | None = None,
                  split: str = "train", max_steps: int | None = None, force: bool = False) -> MinariExport:
    """Write task `task_name` of the dataset root `root` (one split) as a Minari dataset.

    `out`: the dataset folder to write (default: `dataset_id` under the local Minari root, where
    `minari.load_dataset(dataset_id)` finds it). `max_steps`: the task's episode cap, to tell a
    truncated episode from a terminated one where the shards did not record it. An existing
    dataset there is replaced only with `force`; the dataset is written beside it and moved into
    place, so a killed export leaves none half written."""
    m = minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.dataset.minari_storage import MinariStorage

    dataset_id = dataset_id or default_dataset_id(task_name, split)
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):
        raise ValueError(f"dataset id {dataset_id!r} is not a Minari id: (namespace/)name-v<version>, "
                         "e.g. gato/control/cartpole/train-v0") from None
    ds = TaskDataset(root, task_name)
    episodes = ds.seeded_episodes(split)
    if ds.errors:
        raise ValueError(f"{task_name}: unreadable shards, nothing written: {'; '.join(ds.errors)}")
    if not episodes:
        raise ValueError(f"{task_name}: no {split} episodes under {root}")
    spec = ds.spec
    labelled = any(ep.executed is not None for _, ep in episodes)
    if labelled and isinstance(spec.action_space, (spaces.Dict, spaces.Tuple)):
        raise ValueError(f"{task_name}: labels apart from executed actions are exported for flat action spaces "
                         f"only, not {spec.action_space}")
    dest = Path(out) if out is not None else minari_root() / dataset_id
    if dest.exists():
        if not (dest / "data" / "metadata.json").is_file():
            raise ValueError(f"{dest} exists and is not a Minari dataset: choose another --out (nothing there is "
                             "replaced)")
        if not force:
            raise ValueError(f"{dest} already holds a Minari dataset; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        storage = MinariStorage.new(tmp / "data", observation_space=spec.observation_space,
                                    action_space=spec.action_space, data_format=DATA_FORMAT, jpeg_encoding=False)
        buffers, notes, repeated, derived, steps = [], [], 0, 0, 0
        for i, (seed, ep) in enumerate(episodes):
            n = len(ep)
            final = ep.final_observation
            repeated += final is None
            truncated = ep.truncated
            if truncated is None:
                derived += 1
                truncated = max_steps is not None and n >= max_steps
            term, trunc = np.zeros(n, bool), np.zeros(n, bool)
            (trunc if truncated else term)[-1] = True
            acted = ep.executed if ep.executed is not None else ep.actions
            infos = None
            if labelled:
                labels = _stack(spec.action_space, list(ep.actions) + [ep.actions[-1]])
                infos = {LABELS_INFO: labels.reshape(n + 1, -1)}
            buffers.append(EpisodeBuffer(
                id=i, seed=seed, infos=infos,
                observations=_stack(spec.observation_space, list(ep.observations) + [
                    ep.observations[-1] if final is None else final]),
                actions=_stack(spec.action_space, acted), rewards=np.asarray(ep.rewards, np.float32),
                terminations=term, truncations=trunc))
            notes.append({"gato_final_observation": "repeated" if final is None else "recorded",
                          "gato_ending": "recorded" if ep.truncated is not None else
                          "derived from the length" if max_steps is not None else "unknown: marked terminated"})
            steps += n
        storage.update_episodes(buffers)
        storage.update_episode_metadata(notes, range(len(episodes)))
        card = ds.card
        storage.update_metadata({
            "dataset_id": dataset_id, "minari_version": m.__version__,
            "algorithm_name": str(card.get("expert", "unknown")),
            "description": str(card.get("description") or f"gato {task_name} {split} episodes"),
            "gato": {"task": task_name, "split": split, "format_version": card.get("format_version", 1),
                     "noise": card.get("noise", 0.0), "episodes": len(episodes),
                     "final_observation": f"recorded in {len(episodes) - repeated} episodes; the last stored "
                                          f"observation repeated in {repeated}",
                     "truncations": f"recorded in {len(episodes) - derived} episodes; derived in {derived} "
                                    + (f"(truncated when {max_steps} steps long, else terminated)"
                                       if max_steps is not None else "(marked terminated: no episode cap known)"),
                     "labels": f"info {LABELS_INFO!r}" if labelled else "the actions"}})
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MinariExport(dataset_id, dest, len(episodes), steps, repeated, derived)
