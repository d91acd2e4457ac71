"""Data from elsewhere: local copies of JAT's dataset train and prompt as our own (gato/data/jat.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gato.commands.data import collect
from gato.commands.train import train
from gato.config import get_preset
from gato.data.datasets import control_sources, find_tasks, open_task
from gato.data.jat import jat_folders, registry_name
from gato.data.storage import FINAL_COLUMNS, TRUNCATED
from gato.envs.registry import task_spec
from gato.tokenization.text import TextTokenizer


@pytest.mark.parametrize("jat,ours", [
    ("babyai-go-to-red-ball-no-dists", "babyai/GoToRedBallNoDists"),
    ("babyai-key-corridor-s3-r1", "babyai/KeyCorridorS3R1"),
    ("metaworld-button-press-topdown", "metaworld/button-press-topdown"),
    ("mujoco-doublependulum", "mujoco/inverted-double-pendulum"),
    ("mujoco-walker", "mujoco/walker2d"),
    ("mujoco-hopper", "mujoco/hopper"),
    ("atari-pong", "jat-atari/pong"),  # 84x84x4 greyscale stacks: not our atari/pong's observation
    ("conceptual-captions", None),
    ("oscar", None),
])
def test_jat_names_map_to_ours(jat, ours):
    assert registry_name(jat) == ours
    if ours and not ours.startswith("jat-"):
        assert task_spec(ours) is not None, f"{ours} is not a registered task"


def as_jat(ours: Path, task: str, folder: Path) -> Path:
    """Our collected shards of `task` rewritten in JAT's layout: no card, no seed column nor the
    episode's end (final observation, truncated), files named train-XXXXX-of-YYYYY.parquet
    directly in the task folder."""
    shards = sorted((ours / task / "train").glob("shard-*.parquet"))
    folder.mkdir(parents=True)
    for i, shard in enumerate(shards):
        table = pq.read_table(shard)
        table = table.drop([c for c in table.column_names if c in ("seed", TRUNCATED, *FINAL_COLUMNS.values())])
        pq.write_table(table, folder / f"train-{i:05d}-of-{len(shards):05d}.parquet")
    return folder


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ours")
    collect(("metaworld/reach", "babyai/GoToRedBall"), episodes=2, test_episodes=1, out=root, progress=False)
    return root


@pytest.mark.parametrize("task,jat", [("metaworld/reach", "metaworld-reach"),
                                      ("babyai/GoToRedBall", "babyai-go-to-red-ball")])
def test_the_same_observation_gets_the_same_tokens_from_jat_files(collected, tmp_path, task, jat):
    """Meta-World's companding and BabyAI's text and grid come out identical: a mapped JAT folder
    is read with our environment's spaces, not with spaces inferred from its values."""
    as_jat(collected, task, tmp_path / jat)
    assert find_tasks(tmp_path) == [task] and jat_folders(tmp_path) == {task: tmp_path / jat}
    cfg, text = get_preset("gato-tiny"), TextTokenizer.default()
    kw = dict(tasks=(task,), threshold=0.0, verbose=False, spec_of=task_spec)
    (ours,), (theirs,) = (control_sources(r, cfg.token_map, text, **kw) for r in (collected, tmp_path))
    assert theirs.layout.spec == ours.layout.spec
    for a, b in zip(ours.episodes, theirs.episodes, strict=True):
        sa, sb = (src.layout.steps(e, 0, len(e), with_bos=True) for src, e in ((ours, a), (theirs, b)))
        assert len(sa) > 100 and np.array_equal(sa.ids, sb.ids) and np.array_equal(sa.kinds, sb.kinds)


def write_atari_like(folder: Path, steps=(6, 9), seed=0) -> list[np.ndarray]:
    """JAT's Atari layout: 84x84x4 stacked greyscale frames as nested lists, discrete actions."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (n, 84, 84, 4), dtype=np.uint8) for n in steps]
    u8 = pa.list_(pa.list_(pa.list_(pa.list_(pa.uint8()))))
    folder.mkdir(parents=True)
    pq.write_table(pa.table({
        "image_observations": pa.array([f.tolist() for f in frames], u8),
        "discrete_actions": pa.array([rng.integers(0, 6, n).tolist() for n in steps], pa.list_(pa.int64())),
        "rewards": pa.array([rng.normal(size=n).tolist() for n in steps], pa.list_(pa.float32())),
    }), folder / "train-00000-of-00001.parquet")
    return frames


def test_gato_train_takes_a_folder_of_jat_tasks_without_a_card(collected, tmp_path):
    root = tmp_path / "jat"
    as_jat(collected, "babyai/GoToRedBall", root / "babyai-go-to-red-ball")
    frames = write_atari_like(root / "atari-pong")
    ds = open_task(root, "jat-atari/pong")
    assert ds.spec.observation_space.shape == (84, 84, 1)  # an image of 36 patches, not 28,224 values
    assert np.array_equal(np.stack(ds.episodes()[0].observations), frames[0][..., -1:])
    out = train(tmp_path / "run", data=str(root), steps=2, batch_size=2, context=64, warmup=1,
                checkpoint_every=2, min_return=0.0, progress=False, device="cpu")
    assert out["step"] == 2 and out["history"] and all(np.isfinite(h["loss"]) for h in out["history"])


def test_a_jat_column_we_do_not_know_names_the_file_and_column(tmp_path):
    folder = tmp_path / "mujoco-hopper"
    folder.mkdir()
    bad = folder / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"continuous_observations": [[[0.0] * 11]], "continuous_actions": [[[0.0] * 3]],
                             "rewards": [[1.0]], "qpos": [[[0.0]]]}), bad)
    with pytest.raises(ValueError, match=rf"{bad}: column 'qpos' is not one of JAT's"):
        open_task(tmp_path, "mujoco/hopper", task_spec)
