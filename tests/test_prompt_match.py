"""Prompts matched by mission: training draws a prompt from an episode with the same text
(BabyAI's mission), the agent chooses each episode's prompt from its first observation, and
`gato train/eval --prompt-match` reach both."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import SMALL, small_model
from gymnasium import spaces

from gato.agent import GatoAgent
from gato.commands.data import collect
from gato.commands.evaluate import evaluate
from gato.commands.train import train
from gato.config import get_preset
from gato.data.datasets import open_task
from gato.data.episode import Episode, TaskSpec, text_of
from gato.data.layout import EpisodeLayout
from gato.data.sampling import ControlSource
from gato.envs import get_task
from gato.envs.registry import task_spec
from gato.prompts import matched_prompts
from gato.tokenization.text import TextTokenizer
from gato.tokenization.vocab import Kind

TM = get_preset("gato-tiny").token_map
MISSIONS = ["go to the red ball", "go to the red ball", "go to the blue key", "go to the blue key",
            "open the door", "pick up a box"]
TAGGED = TaskSpec("test/missions", spaces.Dict({"ep": spaces.Discrete(100), "mission": spaces.Text(64),
                                                "t": spaces.Discrete(30)}), spaces.Discrete(4))


def _episodes() -> list[Episode]:
    """Episode e's observations carry 50 + e (told apart from the step index t < 30) and its mission."""
    return [Episode([{"ep": 50 + e, "mission": m, "t": t} for t in range(30)], [t % 4 for t in range(30)])
            for e, m in enumerate(MISSIONS)]


def _episodes_in(seq) -> set[int]:
    ids = seq.ids[seq.kinds == Kind.DISCRETE_OBS] - TM.discrete_start
    return {int(v) - 50 for v in ids if v >= 50}


@pytest.mark.parametrize("match", [False, True])
def test_a_matched_prompt_comes_from_another_episode_with_the_same_mission(match):
    src = ControlSource(TAGGED, _episodes(), TM, TextTokenizer.default(), prompt_prob=1.0, prompt_tokens=24,
                        prompt_match=match)
    rng = np.random.default_rng(0)
    partners = {i: set() for i in range(len(MISSIONS))}
    for _ in range(300):
        seq = src.sample(rng, 80)
        prompt, main = seq.slice(0, 24), seq.slice(24, 80)
        (j,), (i,) = _episodes_in(prompt), _episodes_in(main)
        assert not prompt.loss_mask.any() and j != i
        partners[i].add(j)
    for i, got in partners.items():
        same = {k for k, m in enumerate(MISSIONS) if m == MISSIONS[i] and k != i}
        if match and same:
            assert got == same  # always the other episode of its mission
        else:
            assert len(got) >= 4  # a mission no other episode has: any other episode, as unmatched


@pytest.fixture(scope="module")
def babyai_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    collect(("babyai/GoToLocal",), episodes=12, test_episodes=1, out=root, progress=False)
    return root


def test_matched_prompts_end_the_best_episode_of_the_mission_and_reach_the_agent(babyai_root):
    cfg = dataclasses.replace(SMALL, context=1024)  # 256-token prompts: more than a BabyAI step (about 160)
    spec, text = task_spec("babyai/GoToLocal"), TextTokenizer.default()
    episodes = open_task(babyai_root, "babyai/GoToLocal", task_spec).episodes("train")
    choose = matched_prompts(babyai_root, "babyai/GoToLocal", spec, cfg, text)
    layout = EpisodeLayout(spec, cfg.token_map, text, cfg.max_local_positions)

    def ends(prompt, ep) -> bool:
        full = layout.steps(ep, 0, len(ep), with_bos=True)
        return np.array_equal(full.ids[-len(prompt):], prompt.ids)

    missions = {text_of(e.observations[0]) for e in episodes}
    assert len(missions) > 3
    for m in missions:
        ours = [e for e in episodes if text_of(e.observations[0]) == m]
        best = max(ours, key=lambda e: float(e.rewards.sum()))
        prompt = choose(best.observations[0])
        assert 150 < len(prompt) <= 256 and ends(prompt, best)  # the episode's end, or all of a short one
        assert not any(ends(prompt, e) for e in episodes if text_of(e.observations[0]) != m)
    task_best = max(episodes, key=lambda e: float(e.rewards.sum()))
    unseen = dict(episodes[0].observations[0], mission="go to the purple unicorn")
    assert ends(choose(unseen), task_best)  # a mission the data lacks: the task's own prompt

    # The agent takes each new episode's prompt from its first observation, row by row.
    env = get_task("babyai/GoToLocal").make()
    firsts = [env.reset(seed=s)[0] for s in (1, 2, 3)]
    agent = GatoAgent(small_model(cfg), spec, 2, text=text, prompt=choose)
    assert len({tuple(choose(o).ids) for o in firsts}) == 3  # three missions, three prompts
    for obs_pair in ([firsts[0], firsts[1]], [firsts[2], firsts[1]]):
        agent.act(obs_pair)
        for r, obs in enumerate(obs_pair):
            w = agent.window(r)
            p = choose(obs)
            np.testing.assert_array_equal(w.ids[:len(p)], p.ids)
            assert w.kinds[len(p)] == Kind.BOS and (w.kinds == Kind.BOS).sum() == 1 + (p.kinds == Kind.BOS).sum()
        agent.reset([0])


def test_train_and_eval_with_prompt_match(babyai_root, tmp_path):
    run = tmp_path / "run"
    train(out=run, data=str(babyai_root), prompt_match=True, steps=2, batch_size=2, context=512, warmup=1,
          checkpoint_every=2, progress=False)
    saved = json.loads(next(run.glob("step_*/config.json")).read_text())
    assert saved["train"]["prompt_match"] is True
    with pytest.raises(ValueError, match="--prompt-match"):
        evaluate(run, tasks=("babyai/GoToLocal",), episodes=1, out=tmp_path / "e0", prompt_match=True)
    r = evaluate(run, tasks=("babyai/GoToLocal",), episodes=2, out=tmp_path / "e", data=babyai_root, vl=False,
                 videos=0, prompt_match=True, progress=False)
    assert r["prompt_match"] is True and r["tasks"]["babyai/GoToLocal"]["episodes"] == 2
    with pytest.raises(ValueError, match="prompt_match differ"):  # not mixed with an unmatched evaluation
        evaluate(run, tasks=("babyai/GoToLocal",), episodes=2, out=tmp_path / "e", data=babyai_root, vl=False,
                 videos=0, progress=False)
