"""Does a BabyAI level need more memory than gato's context holds? (docs/quality.md)

The BabyAI bot plans over a map of every cell it has seen this episode. gato acts within a
512-token window, about three BabyAI timesteps. This runs the bot with its map cut to the views
of its last k steps (planning afresh each step, so it keeps no plan either) and reports success
and return against the full bot on the same reset seeds.

    python experiments/babyai_memory.py GoToRedBall GoToLocal PickupDist --episodes 200
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io

import gymnasium as gym
import numpy as np

from gato.envs.babyai import MAX_SEARCHES, BotStuck, _Bot


def seen(u) -> np.ndarray:
    """The cells of the agent's current view, in grid coordinates (as minigrid's bot maps them)."""
    _, vis = u.gen_obs_grid()
    size, pos, f, r = u.agent_view_size, u.agent_pos, u.dir_vec, u.right_vec
    top_left = pos + f * (size - 1) - r * (size // 2)
    out = np.zeros((u.width, u.height), bool)
    for j in range(size):
        for i in range(size):
            a, b = top_left - f * j + r * i
            if vis[i, j] and 0 <= a < u.width and 0 <= b < u.height:
                out[a, b] = True
    return out


def episode(env, seed: int, views: int | None) -> tuple[bool, float, int]:
    """One episode; `views` None: the bot as shipped; k: a fresh bot each step, its map the last k views."""
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
        env.reset(seed=seed)
    u, bot = env.unwrapped, _Bot(env)
    past = collections.deque(maxlen=max((views or 1) - 1, 1))
    ret, steps, done, won = 0.0, 0, False, False
    while not done:
        if views is not None:
            bot = _Bot(env)
            if views > 1:
                for m in past:
                    bot.vis_mask |= m
            past.append(seen(u))
        bot.budget = MAX_SEARCHES
        try:
            action = bot.replan()
        except (BotStuck, AssertionError, IndexError):  # a map this partial can leave it planless
            action = env.action_space.sample()
        _, r, term, trunc, _ = env.step(action)
        ret, steps, done, won = ret + r, steps + 1, term or trunc, won or (term and r > 0)
    return won, ret, steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("levels", nargs="+")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--views", type=int, nargs="+", default=[1, 3])
    p.add_argument("--seed", type=int, default=10_000)
    a = p.parse_args()
    print(f"{'level':<20} {'memory':>12} {'success':>8} {'return':>7} {'steps':>6}")
    for level in a.levels:
        env = gym.make(f"BabyAI-{level}-v0")
        for views in [None, *a.views]:
            runs = np.array([episode(env, a.seed + e, views) for e in range(a.episodes)], float)
            label = "episode" if views is None else f"last {views} views"
            print(f"{level:<20} {label:>12} {runs[:, 0].mean():>8.1%} {runs[:, 1].mean():>7.3f} {runs[:, 2].mean():>6.1f}")


if __name__ == "__main__":
    main()
