"""Contract test over every registered task: it resets, steps, its observations tokenize, its
actions round-trip through the action tokenizer, and its expert acts validly. One short rollout
per task by default; full expert episodes are marked slow."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from gato.config import get_preset
from gato.envs import all_tasks, get_task, resolve
from gato.envs.registry import SKIPPED
from gato.rollout import RandomPolicy, check_observations, run_episode
from gato.tokenization import spaces as tok
from gato.tokenization.text import TextTokenizer

TM = get_preset("gato-tiny").token_map
TEXT = TextTokenizer.default()
TASKS = all_tasks()
CONTRACT_STEPS = 5


def _assert_round_trip(space, action):
    ids = tok.encode(space, action, TM, role=tok.ACTION, text=TEXT).ids
    back = tok.decode(space, ids, TM, text=TEXT)
    assert space.contains(back), f"decoded action {back} not in {space}"
    if isinstance(space, tok.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        bounded = np.isfinite(low) & np.isfinite(high)
        err = np.abs(np.asarray(back, np.float64) - np.clip(np.asarray(action, np.float64), low, high))
        half_bin = (high - low) / TM.num_bins / 2
        assert np.all(err[bounded] <= half_bin[bounded] * (1 + 1e-6) + 1e-6)
    elif not isinstance(space, tok.spaces.Box):
        assert tok.encode(space, back, TM, role=tok.ACTION, text=TEXT).ids.tolist() == ids.tolist()


@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_task_contract(task):
    env = task.make()
    try:
        expert = task.make_expert(env)
        obs, _ = env.reset(seed=0)
        expert.reset(0)
        for t in range(CONTRACT_STEPS):
            assert env.observation_space.contains(obs), f"{task.name}: step {t} observation outside its space"
            toks = tok.encode(env.observation_space, obs, TM, text=TEXT)
            assert 0 < len(toks) <= get_preset("gato-tiny").max_local_positions
            action = expert(obs)
            assert env.action_space.contains(action), f"{task.name}: expert action {action} invalid"
            _assert_round_trip(env.action_space, action)
            _assert_round_trip(env.action_space, env.action_space.sample())
            obs, reward, terminated, truncated, _ = env.step(action)
            assert np.isfinite(reward)
            if terminated or truncated:
                obs, _ = env.reset(seed=t + 1)
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_expert_episode(task):
    env = task.make()
    result = run_episode(task, env, task.make_expert(env), seed=0)
    assert result.length == len(result.episode) > 0
    env.close()


def test_every_domain_expert_beats_random():
    """One task per domain, a few seeds: the expert's mean return is above the random policy's."""
    cheap = {"atari": "atari/breakout"}  # Atari caps episodes at 3000 steps; its planners are slow
    for domain in sorted({t.domain for t in TASKS}):
        task = get_task(cheap[domain]) if domain in cheap else next(
            t for t in TASKS if t.domain == domain and t.max_steps <= 1000)
        env, steps = task.make(), min(task.max_steps, 400)
        expert = np.mean([run_episode(task, env, task.make_expert(env), seed=s, max_steps=steps, record=False).ret
                          for s in range(3)])
        rand = np.mean([run_episode(task, env, RandomPolicy(env), seed=s, max_steps=steps, record=False).ret
                        for s in range(3)])
        env.close()
        assert expert > rand, f"{task.name}: expert {expert} <= random {rand}"


def test_unknown_task_suggests_close_names():
    with pytest.raises(ValueError, match="control/cartpole"):
        get_task("control/cartpol")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("nodomain/thing")


def test_resolve_domains_and_names():
    names = [t.name for t in resolve(["control", "control/cartpole"])]
    assert names == sorted(t.name for t in TASKS if t.domain == "control")
    assert not SKIPPED or all(isinstance(v, str) for v in SKIPPED.values())


def _scripted(task, step):
    """An environment with the task's spaces: reset gives zeros, step number t (from 1) returns step(t)."""

    class Scripted:
        observation_space = task.make().observation_space
        action_space = task.make().action_space

        def reset(self, seed=None):
            self.t = 0
            return np.zeros(4, np.float32), {}

        def step(self, action):
            self.t += 1
            return step(self.t)

    return Scripted()


def test_bad_observation_names_task_and_step():
    task = get_task("control/cartpole")
    broken = _scripted(task, lambda t: (np.full(4, np.nan, np.float32), 0.0, False, False, {}))
    with pytest.raises(ValueError, match=r"control/cartpole: observation at step 1"):
        run_episode(task, broken, RandomPolicy(broken), seed=0)


def test_a_crash_after_a_bad_observation_names_its_step_with_or_without_recording():
    """An environment that returns NaN at step 3 and raises on the next step: the error names step
    3 whether the episode was recorded or (an evaluation) only its newest observation was kept."""
    import gato.rollout as rollout

    task = get_task("control/cartpole")

    def step(t):
        if t > 3:
            raise RuntimeError("simulator diverged")
        return np.full(4, np.nan if t == 3 else 0.0, np.float32), 0.0, False, False, {}

    for record in (True, False):
        env = _scripted(task, step)
        with pytest.raises(ValueError, match=r"control/cartpole: observation at step 3 "):
            rollout.run(task, [env], rollout.PolicyActor([RandomPolicy(env)]), [0], record=record)


def test_a_rollout_without_recording_keeps_no_history(monkeypatch):
    import gato.rollout as rollout

    task = get_task("control/cartpole")
    held = []
    finish = rollout._finish
    monkeypatch.setattr(rollout, "_finish", lambda t, env, ep, **kw: held.append(len(ep.observations)) or
                        finish(t, env, ep, **kw))
    envs = [task.make() for _ in range(2)]
    results = rollout.run(task, envs, rollout.PolicyActor([RandomPolicy(e) for e in envs]), [0, 1, 2], record=False)
    assert [r.episode for r in results] == [None] * 3 and min(r.length for r in results) > 1
    assert held == [1, 1, 1]  # an evaluation holds the newest observation a row, not the episode
    recorded = rollout.run(task, envs, rollout.PolicyActor([RandomPolicy(e) for e in envs]), [0], record=True)
    assert held[-1] == recorded[0].length == len(recorded[0].episode.observations)


def test_a_recorded_episode_keeps_its_final_observation_and_how_it_ended():
    """The observation after the last action (not among the steps) and truncated-or-terminated,
    for an episode the task ends and one a step cap ends; and the timing asked for is filled."""
    import gato.rollout as rollout

    task = get_task("control/cartpole")
    env, clock = _scripted(task, lambda t: (np.full(4, t / 100, np.float32), 1.0, t == 5, False, {})), {}
    ended = rollout.run(task, [env], rollout.PolicyActor([RandomPolicy(env)]), [0], timing=clock)[0]
    assert len(ended.episode) == 5 and not ended.truncated and ended.episode.truncated is False
    assert np.allclose(ended.episode.final_observation, 0.05) and np.allclose(ended.episode.observations[-1], 0.04)
    assert set(clock) == {"act", "env", "on_step"} and clock["act"] > 0 and clock["env"] > 0
    capped = rollout.run(task, [env], rollout.PolicyActor([RandomPolicy(env)]), [0], max_steps=3)[0]
    assert capped.truncated and capped.episode.truncated and np.allclose(capped.episode.final_observation, 0.03)


def test_episode_observation_check_agrees_with_the_space_step_by_step():
    """The whole-episode check (one array per leaf) names the same first bad step as space.contains."""
    task = get_task("control/cartpole")
    box = spaces.Box(np.array([-1, 0], np.float32), np.array([1, 5], np.float32))
    ok = np.zeros(2, np.float32)
    cases = [
        (box, [ok, ok, ok]),
        (box, [ok, ok, np.array([0, 6], np.float32), np.array([2, 0], np.float32)]),  # out of bounds
        (box, [ok, np.array([np.nan, 0], np.float32)]),
        (box, [ok, np.zeros(3, np.float32)]),  # ragged
        (box, [ok, np.zeros(2, np.float64)]),  # a dtype that does not cast to the space's
        (spaces.Discrete(3, start=1), [1, 3, 2, 0]),
        (spaces.Dict(a=box, b=spaces.Discrete(2)), [{"a": ok, "b": 1}, {"a": ok, "b": 0}, {"a": ok, "b": 2}]),
        (spaces.Dict(a=box, b=spaces.Discrete(2)), [{"a": ok, "b": 1}, {"a": ok}]),
    ]
    for space, values in cases:
        bad = next((i for i, v in enumerate(values) if not space.contains(v)), None)
        if bad is None:
            check_observations(task, space, values)
        else:
            with pytest.raises(ValueError, match=f"control/cartpole: observation at step {bad} "):
                check_observations(task, space, values)
