"""The acting loop: exact windows past the context, valid actions only, batched == serial."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gato.agent import GatoAgent
from gato.data.episode import Episode, TaskSpec
from gato.data.layout import EpisodeLayout, Sequence
from gato.data.sampling import collate
from gato.envs import get_task
from gato.tokenization.vocab import Kind

from conftest import SMALL, small_model

WINDOW_TOL = 1e-4  # cached vs fresh forward over the same window: float32 summation order only


class CheckedAgent(GatoAgent):
    """Checks every cached forward (a step's observation, and each action token through the
    model's one-token step) against a fresh forward over each row's window."""

    checks = 0

    def _feed(self, step, *, vocab):
        return self._check(super()._feed(step, vocab=vocab), vocab)

    def _feed_token(self, token, i, *, vocab):
        return self._check(super()._feed_token(token, i, vocab=vocab), vocab)

    def _check(self, logits, vocab):
        for r in range(self.n):
            w = self.window(r)
            batch = collate([w], len(w), self.tm)
            fresh, _ = self.model(*batch.inputs())
            torch.testing.assert_close(logits[r], fresh[0, -1, vocab[0]:vocab[1]], atol=WINDOW_TOL, rtol=0)
            CheckedAgent.checks += 1
        return logits


@pytest.mark.parametrize("name", ["control/cartpole", "box2d/lunarlander-continuous"])
def test_cached_logits_equal_a_fresh_window_long_past_the_context(name):
    task = get_task(name)
    envs = [task.make() for _ in range(2)]
    spec = TaskSpec(task.name, envs[0].observation_space, envs[0].action_space)
    agent = CheckedAgent(small_model(), spec, num_envs=2, keep=24)
    n_act = len(agent.ranges)
    step_tokens = envs[0].observation_space.shape[0] + 1 + n_act
    obs = [e.reset(seed=i)[0] for i, e in enumerate(envs)]
    CheckedAgent.checks, fed = 0, 0
    for t in range(50):  # at least 50 x 6 = 300 tokens: past the 64-token context four times
        actions = agent.act(obs)
        fed += step_tokens
        obs = []
        for r, (env, a) in enumerate(zip(envs, actions)):
            o, _, term, trunc, _ = env.step(a)
            if (term or trunc) or (r == 1 and t == 17):  # a reset mid-run in one row
                o, _ = env.reset(seed=100 + t)
                agent.reset([r])
            obs.append(o)
    assert fed > 4 * SMALL.context and CheckedAgent.checks == 2 * 50 * n_act
    assert len(agent.window(0)) <= SMALL.context


def test_image_observations_and_a_prompt_keep_exact_windows_past_the_context():
    """Patches go through the dense step, the padded step after a reset (with an image prompt),
    and every re-encoding: each logit still equals a fresh forward over the row's window."""
    obs_space = spaces.Dict({"pixels": spaces.Box(0, 255, (16, 32, 3), np.uint8),
                             "state": spaces.Box(-np.inf, np.inf, (3,), np.float32)})
    spec = TaskSpec("test/pixels", obs_space, spaces.Box(-1, 1, (2,), np.float32))
    obs_space.seed(0)
    layout = EpisodeLayout(spec, SMALL.token_map)
    prompt = Sequence.concat([layout.timestep(obs_space.sample(), np.zeros(2, np.float32)) for _ in range(2)])
    agent = CheckedAgent(small_model(seed=1), spec, num_envs=3, keep=24, prompt=prompt.without_loss())
    CheckedAgent.checks = 0
    for t in range(30):  # 8 tokens a step: 240 tokens, past the 64-token context three times
        agent.act([obs_space.sample() for _ in range(3)])
        if t in (5, 11):
            agent.reset([t % 3])
    assert CheckedAgent.checks == 3 * 30 * 2
    w = agent.window(1)
    assert (w.kinds == Kind.IMAGE).sum() == len(w.patches) > 0


SPACES = [spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-2, 5, (3,), np.float32),
          spaces.MultiDiscrete([3, 5]), spaces.MultiBinary(2),
          spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-2, 2, (1,), np.float32)})]


@pytest.mark.parametrize("action_space", SPACES, ids=[type(s).__name__ + str(i) for i, s in enumerate(SPACES)])
def test_random_models_never_emit_invalid_actions(action_space):
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    spec = TaskSpec("test/random", obs_space, action_space)
    rng = np.random.default_rng(0)
    for seed in range(3):
        agent = GatoAgent(small_model(seed=seed), spec, num_envs=4, temperature=1.5, seed=seed)
        for _ in range(12):
            actions = agent.act([rng.normal(size=4).astype(np.float32) for _ in range(4)])
            assert all(action_space.contains(a) for a in actions), actions


def test_batched_rollouts_equal_serial_ones():
    task = get_task("control/cartpole")
    env0 = task.make()
    spec = TaskSpec(task.name, env0.observation_space, env0.action_space)
    m = small_model(seed=3)

    def rollout(seeds):
        envs = [task.make() for _ in seeds]
        agent = GatoAgent(m, spec, num_envs=len(seeds))
        obs = [e.reset(seed=s)[0] for e, s in zip(envs, seeds)]
        trace = []
        for _ in range(25):
            actions = agent.act(obs)
            trace.append(actions)
            obs = []
            for r, (env, a) in enumerate(zip(envs, actions)):
                o, _, term, trunc, _ = env.step(a)
                if term or trunc:
                    o, _ = env.reset(seed=1000 + r)
                    agent.reset([r])
                obs.append(o)
        return np.array(trace)

    batched = rollout([0, 1, 2])
    serial = np.stack([rollout([s])[:, 0] for s in (0, 1, 2)], axis=1)
    np.testing.assert_array_equal(batched, serial)


def test_nan_logits_raise_and_send_no_action():
    m = small_model()
    with torch.no_grad():
        m.ln_f.weight.fill_(float("nan"))
    spec = TaskSpec("test/nan", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2))
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        GatoAgent(m, spec).act([np.zeros(2, np.float32)])


def test_observation_outside_its_space_names_the_environment():
    spec = TaskSpec("test/shape", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2))
    agent = GatoAgent(small_model(), spec, num_envs=2)
    with pytest.raises(ValueError, match=r"test/shape: observation of environment 1 at step 0: expected shape \(2,\)"):
        agent.act([np.zeros(2, np.float32), np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match="expected 2 observations"):
        agent.act([np.zeros(2, np.float32)])


def test_action_spaces_the_token_map_cannot_express_fail_before_any_step():
    obs = spaces.Box(-1, 1, (2,), np.float32)
    for action_space, why in [(spaces.Discrete(2000), "more than"), (spaces.Text(5), "cannot act")]:
        with pytest.raises(ValueError, match=why):
            GatoAgent(small_model(), TaskSpec("test/big", obs, action_space))


def test_the_agent_feeds_the_training_layout_of_the_same_episode():
    """Step by step, the tokens the agent puts in its cache (text, image, discrete and continuous
    observation parts; discrete and continuous actions) equal what training lays out for the
    episode it played: ids, kinds and local positions, image patches included."""
    from gato.tokenization.text import TextTokenizer

    text = TextTokenizer.default()
    obs_space = spaces.Dict({"mission": spaces.Text(12, charset="abcdefgh "),
                             "pixels": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                             "grid": spaces.MultiDiscrete([3, 4]),
                             "state": spaces.Box(-2, 2, (2,), np.float32)})
    act_space = spaces.Dict({"move": spaces.Discrete(3), "force": spaces.Box(-1, 1, (1,), np.float32)})
    spec = TaskSpec("test/mixed", obs_space, act_space)
    obs_space.seed(3)
    observations = [obs_space.sample() | {"mission": "go fetch"} for _ in range(4)]
    agent = GatoAgent(small_model(seed=2), spec, 1, text=text)
    actions = [agent.act([o])[0] for o in observations]
    agent._flush()
    fed = agent.window(0)
    layout = EpisodeLayout(spec, SMALL.token_map, text, SMALL.max_local_positions)
    trained = layout.steps(Episode(observations, actions), 0, len(observations), with_bos=True)
    n = len(fed)  # the last action token is sampled but enters the cache with the next observation
    assert n == len(trained) - 1 and (fed.kinds == Kind.IMAGE).sum() == 4  # one 16x16 patch a step
    np.testing.assert_array_equal(fed.ids[fed.kinds != Kind.IMAGE], trained.ids[:n][trained.kinds[:n] != Kind.IMAGE])
    np.testing.assert_array_equal(fed.kinds, trained.kinds[:n])
    np.testing.assert_array_equal(fed.local_pos, trained.local_pos[:n])
    np.testing.assert_array_equal(fed.patches, trained.patches[:len(fed.patches)])


def test_forced_actions_enter_the_cache_as_if_the_agent_had_chosen_them():
    """DAgger's expert mixture: a forced row executes and remembers the given action (its window
    is the training layout of the episode as it happened); the other rows act as they would alone."""
    obs_space = spaces.Box(-2, 2, (3,), np.float32)
    act_space = spaces.Dict({"move": spaces.Discrete(3), "force": spaces.Box(-1, 1, (2,), np.float32)})
    spec = TaskSpec("test/forced", obs_space, act_space)
    obs_space.seed(4)
    act_space.seed(5)
    m = small_model(seed=6)
    pair, alone = GatoAgent(m, spec, 2), GatoAgent(m, spec, 1)
    observations, forced, own = [obs_space.sample() for _ in range(5)], [], []
    for t, o in enumerate(observations):
        f = act_space.sample() if t != 2 else None  # step 2: row 0 acts on its own
        a = pair.act([o, o], forced=[f, None])
        b = alone.act([o])[0]
        if f is not None:
            assert a[0] is f
        forced.append(a[0])
        own.append(b)
        np.testing.assert_array_equal(a[1]["force"], b["force"])
        assert a[1]["move"] == b["move"]
    layout = EpisodeLayout(spec, SMALL.token_map, None, SMALL.max_local_positions)
    for row, actions in ((0, forced), (1, own)):
        fed = pair.window(row)
        trained = layout.steps(Episode(observations, actions), 0, len(observations), with_bos=True)
        np.testing.assert_array_equal(fed.ids, trained.ids[:len(fed)])
    assert not np.array_equal(pair.window(0).ids, pair.window(1).ids)  # forcing changed row 0's history
    with pytest.raises(ValueError, match="forced action of environment 0"):
        pair.act([observations[0]] * 2, forced=[{"move": 7, "force": np.zeros(2, np.float32)}, None])


def test_discrete_temperature_samples_discrete_tokens_and_leaves_continuous_ones_greedy():
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    rng = np.random.default_rng(0)
    observations = [[rng.normal(size=4).astype(np.float32) for _ in range(4)] for _ in range(12)]

    def trace(action_space, **kw):
        agent = GatoAgent(small_model(seed=1), TaskSpec("test/t", obs_space, action_space), num_envs=4, seed=7, **kw)
        return np.array([np.asarray(agent.act(obs)) for obs in observations])

    discrete = spaces.Discrete(5)
    mixed = trace(discrete, temperature=0.0, discrete_temperature=1.0)
    np.testing.assert_array_equal(mixed, trace(discrete, temperature=1.0))  # sampled as at temperature 1
    assert (mixed != trace(discrete)).any()  # and not greedy
    box = spaces.Box(-1, 1, (2,), np.float32)
    np.testing.assert_array_equal(trace(box, discrete_temperature=1.0), trace(box))  # continuous: still greedy
    with pytest.raises(ValueError, match="temperature"):
        GatoAgent(small_model(), TaskSpec("test/t", obs_space, discrete), discrete_temperature=-1.0)
