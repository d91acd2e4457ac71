"""Minari datasets to and from our layout (gato/data/minari_io.py, `gato minari import|export`), on
small datasets the tests make; MINARI_DATASETS_PATH points into tmp_path, so nothing touches ~/.minari."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from gato.cli import main
from gato.commands.data import collect
from gato.commands.minari import minari_export, minari_import
from gato.commands.train import train
from gato.data.episode import Episode, TaskSpec
from gato.data.minari_io import LABELS_INFO, check_spaces
from gato.data.storage import DatasetWriter, TaskDataset

minari = pytest.importorskip("minari")


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """Two CartPole episodes, and two noise-injected BabyAI ones (Dict of image, direction and
    mission text; labels apart from the executed actions)."""
    root = tmp_path_factory.mktemp("collected")
    collect(("control/cartpole",), episodes=2, test_episodes=0, out=root, progress=False)
    collect(("babyai/GoToRedBall",), episodes=2, test_episodes=0, out=root, progress=False, noise=0.3)
    return root


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and np.array_equal(a, b)


def same_episodes(ours: list, back: list) -> None:
    assert len(ours) == len(back)
    for (s1, a), (s2, b) in zip(ours, back):
        assert s1 == s2 and len(a) == len(b)
        assert all(same(x, y) for x, y in zip(a.observations, b.observations))
        assert all(same(x, y) for x, y in zip(a.actions, b.actions))
        assert np.array_equal(a.rewards, b.rewards)
        assert same(a.final_observation, b.final_observation) and a.truncated == b.truncated
        assert (a.executed is None) == (b.executed is None)
        if a.executed is not None:
            assert all(same(x, y) for x, y in zip(a.executed, b.executed))


def test_cartpole_round_trip_through_minari(collected, tmp_path, minari_root):
    ours = TaskDataset(collected, "control/cartpole").seeded_episodes()
    assert all(ep.final_observation is not None and ep.truncated is not None for _, ep in ours)  # collected
    result = minari_export(collected, "control/cartpole")
    assert result["dataset_id"] == "gato/control/cartpole/train-v0"
    assert Path(result["path"]) == minari_root / "gato/control/cartpole/train-v0"

    ds = minari.load_dataset(result["dataset_id"])  # Minari's own reader, from the local root
    assert ds.total_episodes == 2
    assert ds.observation_space == TaskDataset(collected, "control/cartpole").spec.observation_space
    for (seed, ep), m in zip(ours, ds.iterate_episodes()):
        assert m.observations.shape == (len(ep) + 1, 4)  # T + 1: the final observation kept
        assert np.array_equal(m.observations[-1], ep.final_observation)
        assert np.array_equal(m.actions, np.asarray(ep.actions)) and np.array_equal(m.rewards, ep.rewards)
        assert m.terminations[:-1].sum() == m.truncations[:-1].sum() == 0
        assert (bool(m.truncations[-1]), bool(m.terminations[-1])) == (ep.truncated, not ep.truncated)
    assert [md["seed"] for md in ds.storage.get_episode_metadata(range(2))] == [s for s, _ in ours]

    out = minari_import(result["dataset_id"], "control/cartpole", out=tmp_path / "back")
    assert out["episodes"] == 2
    same_episodes(ours, TaskDataset(tmp_path / "back", "control/cartpole").seeded_episodes())
    card = json.loads((tmp_path / "back/control/cartpole/card.json").read_text())
    assert card["source"] == "minari" and card["minari"]["dataset_id"] == result["dataset_id"]


def test_dict_observations_and_labels_round_trip(collected, tmp_path):
    """BabyAI: a Dict with an image grid, a direction and mission text; noise-injected, so the
    executed actions go to Minari's actions and the labels to a per-step info, and back."""
    ours = TaskDataset(collected, "babyai/GoToRedBall").seeded_episodes()
    assert all(ep.executed is not None for _, ep in ours)
    path = tmp_path / "babyai-minari"
    minari_export(collected, "babyai/GoToRedBall", out=path, dataset_id="test/babyai-v1")
    m = minari.MinariDataset(path / "data")
    first = next(iter(m.iterate_episodes()))
    assert first.observations["mission"][-1] == ours[0][1].final_observation["mission"]
    assert np.array_equal(first.actions, np.asarray(ours[0][1].executed))
    assert np.array_equal(first.infos[LABELS_INFO][:-1, 0], np.asarray(ours[0][1].actions))
    minari_import(str(path), "babyai/GoToRedBall", out=tmp_path / "back")
    same_episodes(ours, TaskDataset(tmp_path / "back", "babyai/GoToRedBall").seeded_episodes())
    with pytest.raises(ValueError, match="already holds a Minari dataset; pass --force"):
        minari_export(collected, "babyai/GoToRedBall", out=path)
    with pytest.raises(ValueError, match="already holds 1 shards; pass --force"):
        minari_import(str(path), "babyai/GoToRedBall", out=tmp_path / "back")


def test_episodes_recorded_without_their_end_export_the_last_observation_repeated(tmp_path):
    """Format version 1 shards hold no final observation and no truncation flag: export repeats the
    last observation, derives truncation from the episode cap, and says so in the metadata."""
    spec = TaskSpec("toy/walk", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(3))
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "data", spec, {}) as w:
        for n in (5, 3):
            w.add(Episode(list(rng.uniform(-1, 1, (n, 2)).astype(np.float32)), list(rng.integers(0, 3, n)),
                          np.ones(n, np.float32)), seed=n)
    from gato.data.minari_io import export_minari

    result = export_minari(tmp_path / "data", "toy/walk", tmp_path / "m", max_steps=5)
    assert (result.final_repeated, result.ending_derived) == (2, 2)
    m = minari.MinariDataset(tmp_path / "m" / "data")
    long, short = m.iterate_episodes()
    assert np.array_equal(long.observations[-1], long.observations[-2])  # repeated
    assert long.truncations[-1] and not long.terminations[-1]  # 5 steps: the cap
    assert short.terminations[-1] and not short.truncations[-1]
    meta = m.storage.metadata
    assert "repeated in 2" in meta["gato"]["final_observation"] and "derived in 2" in meta["gato"]["truncations"]
    assert [md["gato_final_observation"] for md in m.storage.get_episode_metadata(range(2))] == ["repeated"] * 2


def minari_dataset(dataset_id: str, obs_space, act_space, observations, actions, rewards) -> None:
    """A one-episode Minari dataset under the local root, made with Minari's own API."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    n = len(rewards)
    buffer = EpisodeBuffer(observations=observations, actions=actions, rewards=rewards,
                           terminations=[False] * (n - 1) + [True], truncations=[False] * n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # env_spec and eval_env: none here
        minari.create_dataset_from_buffers(dataset_id, [buffer], observation_space=obs_space, action_space=act_space,
                                           algorithm_name="test", author="test", author_email="test@example.com",
                                           code_permalink="https://example.com", description="test",
                                           data_format="arrow", jpeg_encoding=False)


@pytest.mark.parametrize("obs_space,act_space,message", [
    (spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(5000),
     r"action space Discrete\(5000\): its values span 5000 ids; the token map has 1024"),
    (spaces.Box(-1, 1, (2,), np.float32), spaces.Text(8),
     r"action space Text\(1, 8, .*\): text actions are not expressible"),
    (spaces.Dict({"frames": spaces.Box(0, 255, (84, 84, 4), np.uint8)}), spaces.Discrete(2),
     r"observation space\['frames'\] Box\(0, 255, \(84, 84, 4\), uint8\): frames of 4 channels"),
])
def test_a_space_the_token_map_cannot_express_is_an_error_naming_it(tmp_path, obs_space, act_space, message):
    n = 3
    obs = ({"frames": np.zeros((n + 1, 84, 84, 4), np.uint8)} if isinstance(obs_space, spaces.Dict)
           else np.zeros((n + 1, 2), np.float32))
    acts = ["abc"] * n if isinstance(act_space, spaces.Text) else np.zeros(n, np.int64)
    minari_dataset("test/bad-v0", obs_space, act_space, obs, acts, [0.0] * n)
    with pytest.raises(ValueError, match=message):
        minari_import("test/bad-v0", "minari/bad", out=tmp_path / "data")
    assert not (tmp_path / "data/minari/bad").exists()  # nothing written


def test_a_registry_task_needs_its_own_spaces(tmp_path):
    n = 3
    minari_dataset("test/pole-v0", spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2),
                   np.zeros((n + 1, 3), np.float32), np.zeros(n, np.int64), [1.0] * n)
    with pytest.raises(ValueError, match=r"its observation space is Box\(-1.0, 1.0, \(3,\), float32\), but "
                                         r"control/cartpole's is Box\(.*\(4,\).*\); import it under a task name"):
        minari_import("test/pole-v0", "control/cartpole", out=tmp_path / "data")


def test_check_spaces_accepts_what_the_tokenizer_takes():
    check_spaces(TaskSpec("x/y", spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
                                              "mission": spaces.Text(64), "state": spaces.Box(-5, 5, (7,))}),
                          spaces.Box(-1, 1, (3,), np.float32)))
    with pytest.raises(ValueError, match="x/y: observation space .* is 2048 tokens an observation; the model's local "
                                         "position table holds 512"):
        check_spaces(TaskSpec("x/y", spaces.Box(-1, 1, (2048,)), spaces.Discrete(2)))


def test_import_then_train_one_step(tmp_path):
    """A dataset of a task we do not have: its own spaces, then `gato train --data`."""
    rng = np.random.default_rng(0)
    obs_space, act_space = spaces.Box(-np.inf, np.inf, (5,), np.float64), spaces.Box(-1, 1, (2,), np.float32)
    from minari.data_collector.episode_buffer import EpisodeBuffer

    buffers = [EpisodeBuffer(observations=rng.normal(size=(n + 1, 5)), seed=i,
                             actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32), rewards=np.ones(n),
                             terminations=[False] * n, truncations=[False] * (n - 1) + [True])
               for i, n in enumerate((12, 9))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers("test/point-v2", buffers, observation_space=obs_space,
                                           action_space=act_space, data_format="arrow")
    minari_import("test/point-v2", "minari/point", out=tmp_path / "data")
    ds = TaskDataset(tmp_path / "data", "minari/point")
    eps = ds.episodes()
    assert [len(e) for e in eps] == [12, 9] and all(e.truncated for e in eps)
    assert ds.spec.observation_space == obs_space
    out = train(tmp_path / "run", data=str(tmp_path / "data"), steps=1, batch_size=2, context=64, warmup=1,
                checkpoint_every=1, min_return=0.0, progress=False, device="cpu")
    assert out["step"] == 1 and all(np.isfinite(h["loss"]) for h in out["history"])


def test_cli_names_a_missing_dataset_and_downloads_nothing(tmp_path, capsys, minari_root):
    with pytest.raises(SystemExit) as e:
        main(["minari", "import", "nobody/nothing-v0", "--task", "minari/nothing", "--out", str(tmp_path / "d")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nobody/nothing-v0: no such folder, and no Minari dataset of that id under" in err
    assert "nothing is downloaded" in err and str(minari_root) in err


def test_a_writer_keeping_final_observations_needs_them(tmp_path):
    spec = TaskSpec("toy/walk", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(3))
    ep = Episode([np.zeros(2, np.float32)], [0], np.zeros(1, np.float32))
    with DatasetWriter(tmp_path, spec, {}, final=True) as w:
        with pytest.raises(ValueError, match="keeps final observations; the episode has none"):
            w.add(ep)
        w.add(Episode(ep.observations, ep.actions, ep.rewards, final_observation=np.ones(2, np.float32),
                      truncated=None))
    (back,) = TaskDataset(tmp_path, "toy/walk").episodes()
    assert np.array_equal(back.final_observation, np.ones(2, np.float32)) and back.truncated is None
