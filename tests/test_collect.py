"""`gato collect` end to end: datasets on disk, resume after a kill, crashing experts, and
training sources read back from the collected data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gato.config import get_preset
from gato.data import storage
from gato.commands.data import collect
from gato.data.datasets import control_sources
from gato.data.sampling import Mixture
from gato.envs import get_task, registry
from gato.tokenization.text import TextTokenizer
from gato.tokenization.vocab import Kind


def test_collect_writes_train_and_test_splits(tmp_path, capsys):
    result = collect(("control/cartpole", "control/mountaincar"), episodes=5, test_episodes=2, out=tmp_path,
                     shard_episodes=2, progress=False)
    assert result["episodes"]["control/cartpole"] == {"train": 5, "test": 2}
    ds = storage.TaskDataset(tmp_path, "control/cartpole")
    assert len(ds.episodes("train")) == 5 and len(ds.episodes("test")) == 2 and not ds.errors
    assert ds.card["expert"] == "analytic" and "gymnasium" in ds.card["versions"]
    env = get_task("control/cartpole").make()
    assert ds.spec.observation_space == env.observation_space
    # Expert episodes of CartPole last the full 500 steps.
    assert all(len(e) == 500 for e in ds.episodes("train"))
    capsys.readouterr()
    again = collect(("control/cartpole",), episodes=3, test_episodes=2, out=tmp_path, progress=False)
    assert again["episodes"]["control/cartpole"] == {"train": 5, "test": 2}
    assert "control/cartpole train: the 3 episodes asked for (seeds 0-2) are on disk already" in capsys.readouterr().out


def test_collect_resumes_after_a_kill(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_add = storage.DatasetWriter.add

    def dying_add(self, episode, seed=None):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # killed while the second shard is in flight
        real_add(self, episode, seed=seed)

    monkeypatch.setattr(storage.DatasetWriter, "add", dying_add)
    with pytest.raises(KeyboardInterrupt):
        collect(("control/acrobot",), episodes=8, test_episodes=0, out=tmp_path, shard_episodes=3, progress=False)
    monkeypatch.setattr(storage.DatasetWriter, "add", real_add)
    ds = storage.TaskDataset(tmp_path, "control/acrobot")
    assert not ds.errors  # every file on disk reads
    on_disk = storage.DatasetWriter(tmp_path, ds.spec, {}, shard_episodes=3).seeds_on_disk("train")
    assert on_disk <= set(range(8)) and len(on_disk) in (3, 5)  # shards flushed: nothing half-written
    collect(("control/acrobot",), episodes=8, test_episodes=0, out=tmp_path, shard_episodes=3, progress=False)
    ds = storage.TaskDataset(tmp_path, "control/acrobot")
    assert len(ds.episodes("train")) == 8
    assert storage.DatasetWriter(tmp_path, ds.spec, {}).seeds_on_disk("train") == set(range(8))


@pytest.fixture
def crashy_task():
    base = get_task("control/cartpole")

    class Crashy:
        def __init__(self, env):
            self.inner = base.make_expert(env)

        def reset(self, seed=None):
            if seed == 2:
                raise RuntimeError("expert exploded")
            self.inner.reset(seed)

        def __call__(self, obs):
            return self.inner(obs)

    task = registry.register(registry.Task("testing/crashy", base.make_env, Crashy, "scripted", 50))
    yield task
    del registry._TASKS[task.name]


def test_crashing_expert_skips_the_episode_and_goes_on(tmp_path, crashy_task, capsys):
    result = collect(("testing/crashy",), episodes=4, test_episodes=1, out=tmp_path, progress=False)
    assert result["failures"] == {"testing/crashy": 1}
    assert result["episodes"]["testing/crashy"] == {"train": 3, "test": 1}
    assert "seed 2 failed" in capsys.readouterr().out


def test_training_sources_from_collected_data(tmp_path):
    collect(("control/cartpole", "box2d/lunarlander"), episodes=3, test_episodes=1, out=tmp_path, progress=False)
    tm = get_preset("gato-tiny").token_map
    srcs = control_sources(tmp_path, tm, TextTokenizer.default(), prompt_tokens=32, verbose=False)
    assert [s.name for s in srcs] == ["box2d/lunarlander", "control/cartpole"]
    batch = Mixture(srcs, tm, seed=0).sample_batch(4, 128)
    kinds = batch.kinds.numpy()
    assert kinds.shape == (4, 128) and (kinds == Kind.SEPARATOR).any()
    assert set(np.unique(kinds[batch.loss_mask.numpy()])) <= {Kind.DISCRETE_ACTION, Kind.CONTINUOUS_ACTION}
    with pytest.raises(ValueError, match="does not exist"):
        control_sources(tmp_path / "nope", tm, TextTokenizer.default())
    with pytest.raises(ValueError, match=r"task 'control/cartpol' is not collected under .*did you mean: control/cartpole"):
        control_sources(tmp_path, tm, TextTokenizer.default(), tasks=("control/cartpol",))


def test_unknown_task_is_rejected_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="did you mean"):
        collect(("control/cartpol",), episodes=1, out=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_collecting_control_tasks_does_not_import_torch(tmp_path):
    """Recording needs no torch: importing it would cost a `gato collect` over a second."""
    code = ("import sys; from pathlib import Path; from gato.commands.data import collect; "
            f"collect(('control/cartpole',), episodes=1, test_episodes=0, out=Path({str(tmp_path)!r}), progress=False); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
