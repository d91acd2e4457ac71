"""Expert-episode storage: space JSON, episode rows, atomic resumable shards, bad shards, JAT's layout."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gymnasium import spaces

from gato.data import storage
from gato.data.episode import Episode, TaskSpec
from gato.data.storage import (
    DatasetWriter,
    TaskDataset,
    episode_to_row,
    filter_by_return,
    jat_task_dataset,
    return_bar,
    row_to_episode,
    space_from_json,
    space_to_json,
)

INF = np.inf
OBS = spaces.Dict([
    ("mission", spaces.Text(12, min_length=1, charset="abc déf")),
    ("image", spaces.Box(0, 255, (16, 16, 3), np.uint8)),
    ("grid", spaces.Box(0, 10, (3, 2), np.int64)),
    ("direction", spaces.Discrete(4, start=1)),
    ("pos", spaces.Box(np.array([-INF, 0], np.float32), np.array([INF, 1], np.float32))),
    ("pair", spaces.Tuple([spaces.MultiBinary(2), spaces.Box(-2.0, 2.0, (1,), np.float64)])),
])
ACT = spaces.Dict({"button": spaces.Discrete(3), "torque": spaces.Box(-1, 1, (2,), np.float32),
                   "multi": spaces.MultiDiscrete([3, 5], start=[-1, 0])})
SPEC = TaskSpec("test/mixed", OBS, ACT)


def same(a, b) -> bool:
    """Exact equality of nested values: structure, key order, dtypes, shapes and values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def episode(spec: TaskSpec, n: int, seed: int) -> Episode:
    spec.observation_space.seed(seed)
    spec.action_space.seed(seed + 1000)
    obs = [spec.observation_space.sample() for _ in range(n)]
    acts = [spec.action_space.sample() for _ in range(n)]
    return Episode(obs, acts, np.random.default_rng(seed).normal(size=n).astype(np.float32))


def same_episode(a: Episode, b: Episode) -> bool:
    return same(a.observations, b.observations) and same(a.actions, b.actions) and same(a.rewards, b.rewards)


# ---------------------------------------------------------------- spaces

@pytest.mark.parametrize("space", [
    spaces.Box(np.array([-INF, 0, -1.5], np.float32), np.array([INF, INF, 2.25], np.float32)),
    spaces.Box(-INF, INF, (2, 3), np.float64),
    spaces.Box(0, 255, (84, 84, 4), np.uint8),
    spaces.Box(np.array([0, -5]), np.array([2**62, 7]), dtype=np.int64),
    spaces.Discrete(7, start=-3),
    spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[0, 1], [-1, 2]]),
    spaces.MultiBinary([2, 3]),
    spaces.MultiBinary(5),
    spaces.Text(30, min_length=2, charset="xyz é!"),
    spaces.Tuple([spaces.Discrete(2), spaces.Box(-1, 1, (2,))]),
    OBS,
])
def test_space_json_round_trip(space):
    text = json.dumps(space_to_json(space), allow_nan=False)  # valid JSON: no inf / nan literals
    back = space_from_json(json.loads(text))
    assert back == space and type(back) is type(space)
    if isinstance(space, spaces.Box):  # Box.__eq__ only compares bounds with allclose
        assert back.dtype == space.dtype and np.array_equal(back.low, space.low) and np.array_equal(back.high, space.high)
    if isinstance(space, spaces.Dict):
        assert list(back.spaces) == list(space.spaces)  # order kept, not re-sorted
    if isinstance(space, spaces.Text):
        assert back.character_set == space.character_set and back.min_length == 2


def test_unsupported_space_is_a_clear_error():
    with pytest.raises(TypeError, match="Graph"):
        space_to_json(spaces.Graph(spaces.Discrete(2), None))


# ---------------------------------------------------------------- rows

def test_episode_row_round_trip_is_exact():
    ep = episode(SPEC, 5, seed=0)
    row = episode_to_row(SPEC, ep)
    assert set(row) == {"text_observations", "image_observations", "discrete_observations",
                        "continuous_observations", "discrete_actions", "continuous_actions", "rewards"}
    assert row["image_observations"].shape == (5, 16, 16, 3)
    assert row["discrete_observations"].shape == (5, 1 + 6 + 2)  # direction, grid, pair's MultiBinary
    assert np.array_equal(row["discrete_observations"][:, 1:7], [o["grid"].reshape(-1) for o in ep.observations])
    assert np.array_equal(row["discrete_observations"][:, 0], [o["direction"] for o in ep.observations])  # sorted keys
    assert row["continuous_observations"].dtype == np.float32 and row["continuous_observations"].shape == (5, 3)
    assert row["discrete_actions"].shape == (5, 3) and row["continuous_actions"].shape == (5, 2)
    back = row_to_episode(SPEC, row)
    assert same(ep.actions, back.actions) and same(ep.rewards, back.rewards)
    for a, b in zip(ep.observations, back.observations):
        assert same({k: v for k, v in a.items() if k != "pair"}, {k: v for k, v in b.items() if k != "pair"})
        assert same(a["pair"][0], b["pair"][0])  # float64 leaf: float32-exact
        assert b["pair"][1].dtype == np.float64 and np.array_equal(b["pair"][1], a["pair"][1].astype(np.float32))


def test_single_discrete_action_is_a_flat_list_and_bad_spaces_fail():
    spec = TaskSpec("a/b", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(6))
    row = episode_to_row(spec, episode(spec, 4, seed=1))
    assert row["discrete_actions"].shape == (4,)
    assert same_episode(row_to_episode(spec, row), episode(spec, 4, seed=1))
    two_texts = TaskSpec("a/b", spaces.Dict(a=spaces.Text(5), b=spaces.Text(5)), spaces.Discrete(2))
    with pytest.raises(ValueError, match="2 text parts"):
        storage.columns(two_texts)
    with pytest.raises(ValueError, match="Text actions"):
        storage.columns(TaskSpec("a/b", spaces.Discrete(2), spaces.Text(5)))
    row["rewards"] = row["rewards"][:3]
    with pytest.raises(ValueError, match="continuous_observations"):
        row_to_episode(spec, row)


# ---------------------------------------------------------------- writer and reader

def test_writer_reader_round_trip(tmp_path):
    eps = [episode(SPEC, 2 + i % 3, seed=i) for i in range(5)]
    test_writer = DatasetWriter(tmp_path, SPEC, {"expert": "scripted"}, split="test")  # both open, as collect does
    with DatasetWriter(tmp_path, SPEC, {"expert": "scripted"}, shard_episodes=2) as w:
        test_writer.add(episode(SPEC, 2, seed=100), seed=100)
        for i, ep in enumerate(eps):
            w.add(ep, seed=i)
        test_writer.close()
    assert w.episodes_on_disk() == 5 and w.episodes_on_disk("test") == 1 and w.seeds_on_disk("test") == {100}
    shards = sorted(p.name for p in (tmp_path / "test" / "mixed" / "train").iterdir())
    assert shards == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    schema = pq.read_schema(tmp_path / "test" / "mixed" / "train" / shards[0])
    assert schema.field("image_observations").type == pa.list_(pa.binary())
    assert schema.field("seed").type == pa.int64()
    ds = TaskDataset(tmp_path, "test/mixed")
    assert ds.spec.observation_space == OBS and ds.spec.action_space == ACT
    got = ds.episodes()
    assert len(got) == 5 and not ds.errors
    assert all(same(a.actions, b.actions) and same(a.observations[0]["image"], b.observations[0]["image"])
               and a.observations[-1]["mission"] == b.observations[-1]["mission"] for a, b in zip(eps, got))
    assert len(ds.episodes(limit=3)) == 3
    returns = [float(e.rewards.sum(dtype=np.float64)) for e in eps]
    assert np.allclose(ds.returns(), returns) and len(ds.returns("test")) == 1
    card = ds.card
    assert card["expert"] == "scripted" and card["format_version"] == storage.FORMAT_VERSION
    assert card["splits"]["train"]["episodes"] == 5 and card["splits"]["train"]["seeds"] == [[0, 4]]
    assert card["splits"]["test"]["episodes"] == 1 and card["splits"]["test"]["seeds"] == [[100, 100]]
    assert np.isclose(card["splits"]["train"]["returns"]["mean"], np.mean(returns))
    assert {"gymnasium", "numpy", "pyarrow"} <= set(card["packages"]) and card["image_shape"] == [16, 16, 3]


def test_kill_mid_shard_leaves_complete_shards_and_resumes(tmp_path, monkeypatch):
    spec = TaskSpec("ctl/task", spaces.Box(-INF, INF, (3,), np.float32), spaces.Discrete(2))
    folder = tmp_path / "ctl" / "task" / "train"
    real_write = pq.write_table

    def killed(table, where, **kw):  # half a file, then the process "dies"
        real_write(table, where, **kw)
        Path(where).write_bytes(Path(where).read_bytes()[:50])
        raise KeyboardInterrupt

    w = DatasetWriter(tmp_path, spec, {}, shard_episodes=2)
    for i in range(2):
        w.add(episode(spec, 3, seed=i), seed=i)
    monkeypatch.setattr(pq, "write_table", killed)
    w.add(episode(spec, 3, seed=2), seed=2)
    with pytest.raises(KeyboardInterrupt):
        w.add(episode(spec, 3, seed=3), seed=3)
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.parquet"]  # no partial file, no temp
    assert w.episodes_on_disk() == 2 and w.seeds_on_disk() == {0, 1}
    (folder / ".shard-00001.parquet.999.tmp").write_bytes(b"PAR1 garbage")  # as a SIGKILL would leave it
    ds = TaskDataset(tmp_path, "ctl/task")
    assert len(ds.episodes()) == 2 and not ds.errors
    w2 = DatasetWriter(tmp_path, spec, {}, shard_episodes=2)
    assert w2.episodes_on_disk() == 2 and w2.seeds_on_disk() == {0, 1} and w2.episodes_on_disk("test") == 0
    assert not list(folder.glob(".*.tmp"))
    with w2:
        for i in (2, 3, 4):
            w2.add(episode(spec, 3, seed=i), seed=i)
    assert sorted(p.name for p in folder.iterdir()) == [f"shard-0000{i}.parquet" for i in range(3)]
    ds = TaskDataset(tmp_path, "ctl/task")
    assert len(ds.episodes()) == 5 and ds.card["splits"]["train"]["seeds"] == [[0, 4]]
    with pytest.raises(ValueError, match="other spaces"):
        DatasetWriter(tmp_path, TaskSpec("ctl/task", spec.observation_space, spaces.Discrete(3)), {})


def test_shards_dictionary_encode_only_repeating_columns(tmp_path):
    with DatasetWriter(tmp_path, SPEC, {}, shard_episodes=2) as w:
        for i in range(2):
            w.add(episode(SPEC, 4, seed=i), seed=i)
    meta = pq.ParquetFile(tmp_path / "test" / "mixed" / "train" / "shard-00000.parquet").metadata.row_group(0)
    dictionary = {meta.column(i).path_in_schema.split(".")[0]: "RLE_DICTIONARY" in meta.column(i).encodings
                  for i in range(meta.num_columns)}
    assert dictionary == {"text_observations": True, "discrete_observations": True, "discrete_actions": True,
                          "image_observations": False, "continuous_observations": False,
                          "continuous_actions": False, "rewards": False, "seed": False}
    got = TaskDataset(tmp_path, "test/mixed").episodes()
    assert all(same(episode_to_row(SPEC, a), episode_to_row(SPEC, episode(SPEC, 4, seed=i))) for i, a in enumerate(got))


def test_card_is_refreshed_at_most_every_interval_and_on_close(tmp_path):
    spec = TaskSpec("ctl/card", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2))
    card = tmp_path / "ctl" / "card" / "card.json"
    w = DatasetWriter(tmp_path, spec, {}, shard_episodes=1, card_interval_s=3600)
    w.add(episode(spec, 3, seed=0), seed=0)  # a shard, but the card was written a moment ago
    assert (tmp_path / "ctl" / "card" / "train" / "shard-00000.parquet").exists()
    assert "train" not in json.loads(card.read_text())["splits"]
    w.close()
    assert json.loads(card.read_text())["splits"]["train"]["episodes"] == 1
    w = DatasetWriter(tmp_path, spec, {}, shard_episodes=1, card_interval_s=0)
    w.add(episode(spec, 3, seed=1), seed=1)
    assert json.loads(card.read_text())["splits"]["train"]["seeds"] == [[0, 1]]


def test_bad_shards_are_reported_and_skipped(tmp_path):
    spec = TaskSpec("ctl/bad", spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
    with DatasetWriter(tmp_path, spec, {}, shard_episodes=1) as w:
        for i in range(4):
            w.add(episode(spec, 3, seed=i), seed=i)
    folder = tmp_path / "ctl" / "bad" / "train"
    s1, s2, s3 = (folder / f"shard-0000{i}.parquet" for i in (1, 2, 3))
    s1.write_bytes(s1.read_bytes()[:-30])  # truncated
    t = pq.read_table(s2)
    pq.write_table(t.rename_columns(["continuous_observations", "continuous_acts", "rewards", "seed"]), s2)
    t = pq.read_table(s3)
    pq.write_table(t.set_column(2, "rewards", pa.array([["1", "2", "3"]], pa.list_(pa.string()))), s3)
    ds = TaskDataset(tmp_path, "ctl/bad")
    with pytest.warns(UserWarning, match="shard-0000"):
        eps = ds.episodes()
    assert len(eps) == 1 and same_episode(eps[0], episode(spec, 3, seed=0))
    assert len(ds.errors) == 3
    assert str(s1) in ds.errors[0]
    assert str(s2) in ds.errors[1] and "'continuous_actions'" in ds.errors[1]
    assert str(s3) in ds.errors[2] and "'rewards'" in ds.errors[2] and "string" in ds.errors[2]


def test_missing_or_corrupt_card_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="card.json"):
        TaskDataset(tmp_path, "no/task")
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"y/card\.json"):
        TaskDataset(tmp_path, "x/y")


# ---------------------------------------------------------------- JAT's layout

def _jat_write(path: Path, columns: dict[str, tuple[list, pa.DataType]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: pa.array(v, t) for k, (v, t) in columns.items()}), path)


def test_jat_metaworld_like_continuous_task(tmp_path):
    rng = np.random.default_rng(0)
    obs = [rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 5)]
    act = [rng.uniform(-1, 1, (n, 2)).astype(np.float32) for n in (3, 5)]
    rew = [rng.normal(size=n).astype(np.float32) for n in (3, 5)]
    f32, f32s = pa.list_(pa.list_(pa.float32())), pa.list_(pa.float32())
    for split, i in (("train", 0), ("test", 1)):
        _jat_write(tmp_path / "metaworld-reach" / f"{split}-00000-of-00001.parquet", {
            "continuous_observations": ([obs[i].tolist()], f32), "continuous_actions": ([act[i].tolist()], f32),
            "rewards": ([rew[i].tolist()], f32s)})
    ds = jat_task_dataset(tmp_path / "metaworld-reach")
    assert ds.spec.name == "metaworld-reach"
    assert ds.spec.observation_space == spaces.Box(-INF, INF, (4,), np.float32)
    assert ds.spec.action_space == spaces.Box(-1, 1, (2,), np.float32)
    train, test = ds.episodes("train"), ds.episodes("test")
    assert len(train) == 1 and len(test) == 1 and not ds.errors
    assert np.array_equal(np.stack(train[0].observations), obs[0]) and np.array_equal(np.stack(test[0].actions), act[1])
    assert np.allclose(ds.returns("test"), [rew[1].sum()])


def test_jat_atari_like_nested_list_images_and_babyai_like_text(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (n, 20, 20, 4), dtype=np.uint8) for n in (2, 3)]
    actions = [[0, 5], [2, 1, 3]]
    u8 = pa.list_(pa.list_(pa.list_(pa.list_(pa.uint8()))))
    _jat_write(tmp_path / "atari-pong" / "train" / "part-0.parquet", {
        "image_observations": ([f.tolist() for f in frames], u8),
        "discrete_actions": (actions, pa.list_(pa.int64())),
        "rewards": ([[0.0, 1.0], [0.0, 0.0, -1.0]], pa.list_(pa.float32()))})
    ds = jat_task_dataset(tmp_path / "atari-pong", "jat-atari/pong")
    # four stacked greyscale frames: the newest is the image (gato/data/jat.py)
    assert ds.spec.observation_space == spaces.Box(0, 255, (20, 20, 1), np.uint8)
    assert ds.spec.action_space == spaces.Discrete(6)
    eps = ds.episodes()
    assert [len(e) for e in eps] == [2, 3] and not ds.errors
    assert all(np.array_equal(np.stack(e.observations), f[..., -1:]) for e, f in zip(eps, frames))
    assert [int(a) for a in eps[1].actions] == actions[1]

    _jat_write(tmp_path / "babyai" / "train-0.parquet", {
        "text_observations": ([["go to the ball", "go to the ball"]], pa.list_(pa.string())),
        "discrete_observations": ([[[1, 2, 3], [4, 5, 6]]], pa.list_(pa.list_(pa.int64()))),
        "discrete_actions": ([[1, 2]], pa.list_(pa.int64())), "rewards": ([[0.0, 0.9]], pa.list_(pa.float32()))})
    ds = jat_task_dataset(tmp_path / "babyai")
    assert ds.spec.observation_space["discrete"] == spaces.Box(0, 6, (3,), np.int64)
    assert ds.spec.observation_space["text"].character_set == set("go tgheball")
    (ep,) = ds.episodes()
    assert ep.observations[1]["text"] == "go to the ball" and list(ep.observations[1]["discrete"]) == [4, 5, 6]


def test_jat_hugging_face_image_structs(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgb = np.random.default_rng(2).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    png = [cv2.imencode(".png", f[..., ::-1])[1].tobytes() for f in rgb]  # cv2 writes BGR
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    _jat_write(tmp_path / "hf" / "train.parquet", {
        "image_observations": ([[{"bytes": b, "path": None} for b in png]], pa.list_(image)),
        "discrete_actions": ([[0, 1]], pa.list_(pa.int64())), "rewards": ([[1.0, 2.0]], pa.list_(pa.float32()))})
    (ep,) = jat_task_dataset(tmp_path / "hf").episodes()
    assert np.array_equal(np.stack(ep.observations), rgb)


# ---------------------------------------------------------------- filtering

def _with_return(r: float) -> Episode:
    return Episode([np.zeros(1)] * 2, [0, 0], np.array([r / 2, r / 2], np.float32))


def test_filter_by_return_positive_and_negative_expert():
    eps = [_with_return(r) for r in (10.0, 8.0, 7.9, -1.0)]
    kept, dropped = filter_by_return(eps, 10.0)
    assert [float(e.rewards.sum()) for e in kept] == [10.0, 8.0] and dropped == 2
    eps = [_with_return(r) for r in (-110.0, -120.0, -121.0, -50.0)]
    kept, dropped = filter_by_return(eps, -100.0)  # bar -120: 80% "of" a negative return is lower
    assert [float(e.rewards.sum()) for e in kept] == [-110.0, -120.0, -50.0] and dropped == 1
    assert filter_by_return(eps, -100.0, threshold=1.0)[1] == 3
    # with a random reference the bar is 80% of the way from random to expert, whatever the sign
    kept, dropped = filter_by_return(eps, -100.0, random_return=-500.0)  # bar -180
    assert [float(e.rewards.sum()) for e in kept] == [-110.0, -120.0, -121.0, -50.0] and dropped == 0
    eps = [_with_return(r) for r in (10.0, 8.5, 8.3, 2.0)]
    assert filter_by_return(eps, 10.0, random_return=2.0)[1] == 2  # bar 8.4: stricter than 8.0
    assert return_bar(10.0, 0.8, random_return=12.0) == 8.0  # an expert below random: no scale to use


def test_a_task_whose_demonstrations_all_fall_short_names_the_bar_and_the_best(tmp_path):
    from gato.config import get_preset
    from gato.data.datasets import control_sources
    from gato.envs import get_task
    from gato.tokenization.text import TextTokenizer

    env = get_task("control/pendulum").make()
    spec = TaskSpec("control/pendulum", env.observation_space, env.action_space)
    with DatasetWriter(tmp_path, spec, {"expert": "test"}) as w:
        w.add(Episode([np.zeros(3, np.float32)] * 2, [np.zeros(1, np.float32)] * 2, np.array([-900.0, -900.0],
                                                                                             np.float32)), seed=0)
    with pytest.raises(ValueError, match=r"control/pendulum: all 1 episodes are below 80% of the expert return "
                                         r".* from random .* \(a return of .*\); the best returned -1800.00"):
        control_sources(tmp_path, get_preset("gato-tiny").token_map, TextTokenizer.default(), verbose=False)
