"""The ARS recipe (determinism, weights file format, running statistics) and the committed experts."""

from __future__ import annotations

import numpy as np
import pytest

from gato.envs import get_task
from gato.rollout import RandomPolicy, run_episode
from gato.experts import ARSExpert
from gato.experts.ars import ARSConfig, RunningStat, load_weights
from gato.experts.ars_training import train_ars

TINY = ARSConfig(directions=2, top=1, horizon=50, eval_every=1, eval_episodes=1, shift=1.0)


def _train(tmp_path, seed, name="w.npz"):
    out = tmp_path / name
    policy, meta = train_ars("Hopper-v5", 2, TINY, seed=seed, out=out)
    return policy, meta, out


def test_recipe_writes_loadable_deterministic_weights(tmp_path):
    policy, meta, out = _train(tmp_path, seed=3)
    loaded, saved = load_weights(out)
    assert loaded.M.shape == (3, 11) and loaded.mean.shape == (11,) and loaded.std.shape == (11,)
    assert np.any(loaded.M != 0) and np.all(loaded.std > 0)
    assert saved["env_id"] == "Hopper-v5" and saved["config"]["directions"] == 2
    assert saved["eval_return"] == meta["eval_return"] and saved["iterations"] in (1, 2)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    action = loaded.act(np.zeros(11), -1, 1)
    assert action.shape == (3,) and np.all(np.abs(action) <= 1)

    again, _, _ = _train(tmp_path, seed=3, name="again.npz")
    other, _, _ = _train(tmp_path, seed=4, name="other.npz")
    np.testing.assert_array_equal(again.M, policy.M)
    np.testing.assert_array_equal(again.mean, policy.mean)
    assert not np.array_equal(other.M, policy.M)


def test_running_stat_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, size=(n, 4)) for n in (1, 7, 50)]
    stat = RunningStat(4)
    for b in batches:
        stat.merge(len(b), b.mean(0), ((b - b.mean(0)) ** 2).sum(0))
    every = np.concatenate(batches)
    np.testing.assert_allclose(stat.mean, every.mean(0))
    np.testing.assert_allclose(stat.std, every.std(0, ddof=1))


def test_committed_hopper_expert_beats_random():
    task = get_task("mujoco/hopper")
    env = task.make()
    expert, rand = task.make_expert(env), RandomPolicy(env)
    for seed in (0, 1):
        ours = run_episode(task, env, expert, seed, max_steps=300, record=False).ret
        chance = run_episode(task, env, rand, seed, max_steps=300, record=False).ret
        assert ours > chance + 300, (seed, ours, chance)
    env.close()


def test_bad_weights_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_weights(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(ValueError, match="corrupt.npz"):
        load_weights(corrupt)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, M=np.array([{"a": 1}], dtype=object), mean=np.zeros(1), std=np.ones(1))
    with pytest.raises(ValueError, match="pickled.npz"):
        load_weights(pickled)
    env = get_task("mujoco/hopper").make()
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        ARSExpert(env, weights="nope.npz")
    env.close()
