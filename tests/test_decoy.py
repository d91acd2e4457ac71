"""Decoy demonstrations (BabyAI): the bot heads for an unnamed object, each step is labelled with
the mission's action, so the history no longer says where to go; only the mission does."""

from __future__ import annotations

import json

import pytest

from gato.commands.data import collect
from gato.data import storage
from gato.envs import get_task
from gato.envs.babyai import BotExpert, DecoyExpert
from gato.rollout import run_episode


def _replay(task, seed: int, actions):
    env = task.make()
    obs, _ = env.reset(seed=seed)
    for a in actions:
        obs, *_ = env.step(a)
    return env, obs


def test_decoy_steps_are_labelled_by_the_missions_bot_from_the_state_reached():
    task = get_task("babyai/PickupDist")
    env = task.make()
    diverted = checked = succeeded = 0
    for seed in range(12):
        r = run_episode(task, env, DecoyExpert(env, 1.0), seed=seed)
        ep = r.episode
        succeeded += r.success
        for t, (label, done) in enumerate(zip(ep.actions, ep.executed)):
            if label == done:
                continue
            diverted += 1
            # The label is what a bot planning for the mission does in the state the decoy reached.
            here, obs = _replay(task, seed, ep.executed[:t])
            assert label == BotExpert(here)(obs)
            checked += 1
    assert diverted >= 12  # the decoys really executed other actions than the labels
    assert checked == diverted
    assert succeeded >= 10  # the mission's bot still finishes the episode


def test_without_a_decoy_the_episode_is_the_bots():
    task = get_task("babyai/GoToLocal")
    env = task.make()
    for seed in range(3):
        decoyed = run_episode(task, env, DecoyExpert(env, 0.0), seed=seed).episode
        plain = run_episode(task, env, BotExpert(env), seed=seed).episode
        assert list(decoyed.actions) == list(plain.actions)


def test_decoys_are_a_split_beside_the_demonstrations_and_training_keeps_them(tmp_path):
    from gato.config import get_preset
    from gato.data.datasets import control_sources
    from gato.tokenization.text import TextTokenizer

    collect(("babyai/GoToLocal",), episodes=4, test_episodes=1, out=tmp_path, noise=0.1, progress=False)
    collect(("babyai/GoToLocal",), episodes=6, out=tmp_path, decoy=1.0, progress=False)
    card = json.loads((tmp_path / "babyai/GoToLocal/card.json").read_text())
    assert card["decoy"] == 1.0 and card["noise"] == 0.1  # the demonstrations' noise is still theirs
    ds = storage.TaskDataset(tmp_path, "babyai/GoToLocal")
    assert len(ds.episodes("train")) == 4 and len(ds.episodes("test")) == 1
    decoys = ds.episodes("decoy")
    assert len(decoys) == 6 and any(list(e.executed) != list(e.actions) for e in decoys)
    (src,) = control_sources(tmp_path, get_preset("gato-tiny").token_map, TextTokenizer.default(), threshold=0.0,
                             verbose=False)
    assert len(src.episodes) == 10
    with pytest.raises(ValueError, match="decoy 1.0, not 0.5"):
        collect(("babyai/GoToLocal",), episodes=8, out=tmp_path, decoy=0.5, progress=False)
    alone = tmp_path / "alone"  # decoys without demonstrations: the error says what is missing
    collect(("babyai/GoToLocal",), episodes=2, out=alone, decoy=1.0, progress=False)
    with pytest.raises(ValueError, match="holds only decoy episodes, .*collect the task's demonstrations"):
        control_sources(alone, get_preset("gato-tiny").token_map, TextTokenizer.default(), verbose=False)


@pytest.mark.parametrize("task,kwargs,msg", [
    ("control/cartpole", {"decoy": 0.5}, "control/cartpole: decoys need a BabyAI level"),
    ("babyai/PutNextLocal", {"decoy": 0.5}, "babyai/PutNextLocal: decoys need a mission naming one object"),
    ("babyai/PickupDist", {"decoy": 1.5}, "decoy must be a probability in \\[0, 1\\]"),
    ("babyai/PickupDist", {"decoy": 0.5, "noise": 0.1}, "noise or decoy, not both"),
])
def test_bad_decoy_is_a_clear_error_before_anything_is_written(tmp_path, task, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        collect((task,), episodes=2, out=tmp_path / "d", progress=False, **kwargs)
    assert not list((tmp_path / "d").glob("*/*/card.json"))
