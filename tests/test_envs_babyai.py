"""BabyAI adapter specifics: level vetting and caps, observation mapping, success, the bot guard."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minigrid")

from minigrid.envs.babyai.core.levelgen import LevelGen

from gato.envs import all_tasks, babyai, get_task
from gato.rollout import RandomPolicy, run_episode

TASKS = all_tasks("babyai")


def test_every_registry_level_is_registered_or_excluded():
    names = {babyai.level_name(k) for k in gym.registry if k.startswith("BabyAI-")}
    assert names == set(babyai.MAX_STEPS) | set(babyai.EXCLUDED)
    assert not set(babyai.MAX_STEPS) & set(babyai.EXCLUDED)
    assert [t.name for t in TASKS] == [f"babyai/{n}" for n in sorted(babyai.MAX_STEPS)]
    assert len(TASKS) >= 30 and all(t.success and t.expert_kind == "bot" for t in TASKS)


def test_max_steps_is_the_levels_own_cap():
    for task in TASKS:
        env = task.make()
        caps = set()
        for seed in range(3):
            env.reset(seed=seed)
            caps.add(env.unwrapped.max_steps)
        u = env.unwrapped
        if isinstance(u, LevelGen) and not u.fixed_max_steps:  # missions vary: the longest one's cap
            actions = 4 if "seq" in u.instr_kinds else 2 if "and" in u.instr_kinds else 1
            navs = actions * (2 if "putnext" in u.action_kinds else 1)
            assert task.max_steps == navs * u.room_size ** 2 * u.num_rows * u.num_cols, task.name
            assert max(caps) <= task.max_steps, task.name
        else:
            assert caps == {task.max_steps}, task.name
        env.close()


def test_observation_is_minigrids_with_real_bounds():
    env = get_task("babyai/GoToLocal").make()
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    raw = u.gen_obs()
    assert np.array_equal(obs["image"], raw["image"]) and obs["image"].shape == (7, 7, 3)
    assert obs["direction"] == u.agent_dir and obs["mission"] == u.mission
    assert env.observation_space.contains(obs)
    assert env.observation_space["image"].high[0, 0].tolist() == [10, 5, 2]  # agent, grey, locked


@pytest.mark.parametrize("name", ["BossLevel", "SynthSeq", "PutNextLocal", "OpenDoorLoc", "PickupLoc"])
def test_missions_fit_the_text_space(name):
    env = get_task(f"babyai/{name}").make()
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        assert env.observation_space["mission"].contains(obs["mission"]), obs["mission"]


class _Terminal(gym.Env):
    """Ends at the first step with the given reward."""

    action_space = gym.spaces.Discrete(7)

    def __init__(self, reward):
        self.reward = reward

    def step(self, action):
        obs = {"direction": 0, "image": np.zeros((7, 7, 3), np.uint8), "mission": "go"}
        return obs, self.reward, True, False, {}


def test_success_is_termination_with_reward():
    assert babyai.BabyAIObservation(_Terminal(0.5)).step(0)[4]["success"] is True
    assert babyai.BabyAIObservation(_Terminal(0.0)).step(0)[4]["success"] is False  # failed mission


@pytest.mark.parametrize("name", ["GoToLocal", "PutNextLocal", "KeyCorridorS3R1"])
def test_bot_succeeds_and_beats_random(name):
    task = get_task(f"babyai/{name}")
    env = task.make()
    bot = [run_episode(task, env, task.make_expert(env), seed=s, record=False) for s in range(5)]
    rand = [run_episode(task, env, RandomPolicy(env), seed=s, record=False) for s in range(5)]
    assert all(r.success for r in bot)
    assert np.mean([r.ret for r in bot]) > np.mean([r.ret for r in rand]) + 0.3


def test_bot_replans_when_the_env_is_reset_behind_its_back():
    env = get_task("babyai/GoToLocal").make()
    expert = babyai.BotExpert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(0)
    expert(obs)
    obs, _ = env.reset(seed=1)  # no expert.reset: it must notice the new mission
    for _ in range(64):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        if terminated or truncated:
            break
    assert info["success"]


def test_looping_bot_raises_instead_of_hanging():
    task = get_task("babyai/GoToImpUnlock")  # seed 6: minigrid's bot replans forever at step 146
    env = task.make()
    with pytest.raises(babyai.BotStuck):
        run_episode(task, env, task.make_expert(env), seed=6, record=False)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_bot_solves_registered_level(task):
    env = task.make()
    wins = 0
    for seed in range(10):
        try:
            wins += bool(run_episode(task, env, task.make_expert(env), seed=seed, record=False).success)
        except (AssertionError, babyai.BotStuck):
            pass
    assert wins >= 8, f"{task.name}: bot solved {wins}/10"
