"""Atari 2600 (Arcade Learning Environment, ale-py ROMs): pixels for the agent, the emulator for
the expert.

Preprocessing (Mnih et al. 2015, Machado et al. 2018), gymnasium's `AtariPreprocessing` over an
`ALE/<Game>-v5` environment made with frameskip=1:
- minimal action set of each game (Discrete(n), n = 3 to 18);
- frame skip 4; the observation is the pixelwise maximum of the last two frames (sprites that
  flicker stay visible), in RGB, resized to 80x80 with cv2.INTER_AREA: Box(0, 255, (80, 80, 3),
  uint8), 25 patches of 16x16. 80 rather than 64 so that the 2x4-pixel Pong and Breakout ball
  survives the resize. No frame stacking (the model sees history in its context), no reward
  clipping, no episode end on life loss;
- 1 to 30 no-op steps after reset, drawn from the reset seed: the emulator is deterministic, and
  without them every episode of a deterministic expert would be the same;
- sticky actions (repeat probability 0.25) only with make(sticky=True), for evaluation; experts
  collect with 0;
- episodes capped at MAX_STEPS = 3000 agent steps (12,000 frames, 3.3 minutes of play) for
  collection and for the reference scores; Freeway, Boxing and Bowling end earlier on their own.

Experts read the emulator (RAM, full-resolution screen or state snapshots), never the observation:
- pong, breakout: ball position and velocity from RAM; the intercept at the paddle line is
  predicted with wall bounces. The paddle is an analogue controller: a press moves its set point
  by ~22 pixels, which the paddle reaches over 3 steps; the expert plans presses with that
  response so the paddle is at the intercept, at an offset giving steep shots, at contact time.
- freeway: always up. boxing: stand just below and beside the opponent and punch.
- demonattack: from the screen, stand under the lowest demon and fire; step aside from shots.
- enduro, atlantis: lookahead: clones the emulator state, tries each candidate action for a few
  steps (Enduro: accelerate straight, left, right for 6 steps; Atlantis: wait or fire one of the
  three guns, 12 steps), keeps the one with the best reward.
- bowling: moves to a fixed lane position, rolls and curves the ball at a fixed time (a strike
  line found by a small search).
"""

from __future__ import annotations

from functools import partial

import ale_py
import gymnasium as gym
import numpy as np

from gato.envs.registry import Task, register

SIZE = 80  # observation height and width
FRAME_SKIP = 4
NOOP_MAX = 30
STICKY = 0.25  # repeat-action probability with make(sticky=True)
MAX_STEPS = 3000


gym.register_envs(ale_py)


def make_atari(game: str, render_mode=None, sticky=False) -> gym.Env:
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=STICKY if sticky else 0.0,
                   full_action_space=False, render_mode=render_mode)
    return gym.wrappers.AtariPreprocessing(env, noop_max=NOOP_MAX, frame_skip=FRAME_SKIP, screen_size=SIZE,
                                           grayscale_obs=False, terminal_on_life_loss=False)


class _Expert:
    """Bound to one environment; reads its emulator. Actions by name from the minimal action set."""

    def __init__(self, env):
        self.ale = env.unwrapped.ale
        self.a = {name: i for i, name in enumerate(env.unwrapped.get_action_meanings())}
        self.reset()

    def reset(self, seed=None):
        pass

    def ram(self) -> np.ndarray:
        return self.ale.getRAM().astype(int)


# Per paddle game: RAM of the ball's coordinate towards the paddle (0: no ball) and along it, RAM
# of the paddle, where the ball meets the paddle, the walls the ball bounces between, the paddle's
# offset from the ball at contact, its rest position, the actions that increase and decrease its
# coordinate, the serve action, and how far a press has moved the paddle 0, 1, 2, 3+ steps later.
PADDLE_GAMES = {
    "Pong": ((49, 54), 51, 190, (44, 204), -2, 125, ("LEFT", "RIGHT"), None, (0, 9, 19, 22)),
    "Breakout": ((101, 99), 72, 176, (56, 201), 8, 120, ("RIGHT", "LEFT"), "FIRE", (0, 12, 22, 23)),
}


class Paddle(_Expert):
    """Pong and Breakout: put the paddle where the ball will cross the paddle line (PADDLE_GAMES)."""

    def __init__(self, game, env):
        (self.ball, self.paddle, self.contact, self.walls, self.offset, self.rest, moves, serve,
         self.h) = PADDLE_GAMES[game]
        super().__init__(env)
        self.moves = {1: self.a[moves[0]], -1: self.a[moves[1]], 0: self.a["NOOP"]}
        self.serve = None if serve is None else self.a[serve]

    def reset(self, seed=None):
        self.prev, self.presses, self.t = None, [], 0  # presses: (step, +1 or -1)

    def _reflect(self, y):
        lo, hi = self.walls
        y = (y - lo) % (2 * (hi - lo))
        return lo + (y if y <= hi - lo else 2 * (hi - lo) - y)

    def _moved(self, k):  # displacement k steps after a press
        return self.h[min(k, len(self.h) - 1)]

    def __call__(self, obs):
        r = self.ram()
        x, y, p = r[self.ball[0]], r[self.ball[1]], r[self.paddle]
        target, steps = self.rest, len(self.h)
        if x > 0 and self.prev is not None and x > self.prev[0]:  # coming towards the paddle
            vx, vy = x - self.prev[0], y - self.prev[1]
            steps = max(1, round((self.contact - x) / vx))
            target = self._reflect(y + vy * steps) - self.offset
        self.prev = (x, y) if x > 0 else None
        now, self.t = self.t, self.t + 1
        if x == 0 and self.serve is not None:
            return self.serve
        # Where the paddle will be at contact from the presses still under way, then the best press.
        at_contact = p + sum(u * (self._moved(now + steps - t) - self._moved(now - t)) for t, u in self.presses)
        u = min((0, -1, 1), key=lambda u: abs(target - (at_contact + u * self._moved(steps))))
        self.presses = [(t, v) for t, v in self.presses if now - t < len(self.h)] + ([(now, u)] if u else [])
        return self.moves[u]

    def taken(self, action) -> None:
        """Another policy acted: the paddle's motion model counts the press really made."""
        u = next((k for k, a in self.moves.items() if a == action), 0)
        now = self.t - 1
        self.presses = [(t, v) for t, v in self.presses if t != now] + ([(now, u)] if u else [])


class Freeway(_Expert):
    def __call__(self, obs):
        return self.a["UP"]


class Boxing(_Expert):
    """Keep 10 pixels below and 12 beside the opponent (punches land from there); punch."""

    def __call__(self, obs):
        r = self.ram()
        dx, dy = r[33] - r[32], r[35] - r[34] + 10  # opponent minus player, x and y
        name = "UP" if dy < -3 else "DOWN" if dy > 3 else ""
        if abs(dx) > 15:
            name += "RIGHT" if dx > 0 else "LEFT"
        elif abs(dx) < 9:
            name += "LEFT" if dx > 0 else "RIGHT"
        if abs(dy) <= 7 and abs(dx) <= 19:
            name += "FIRE"
        return self.a[name or "NOOP"]


class DemonAttack(_Expert):
    """From the screen: step away from anything near the cannon, else go under the lowest demon."""

    CANNON, LASER = (184, 70, 162), (212, 140, 252)

    def __call__(self, obs):
        s = self.ale.getScreenRGB()
        xs = np.flatnonzero((s[170:188] == self.CANNON).all(-1).any(0))
        if len(xs) == 0:
            return self.a["FIRE"]
        x = xs.mean()
        band = s[150:186]
        danger = band.any(-1) & ~(band == self.LASER).all(-1) & ~(band == self.CANNON).all(-1)
        near = np.flatnonzero(danger.any(0)) - x
        near = near[np.abs(near) < 12]
        if len(near):
            return self.a["LEFTFIRE" if near.mean() > 0 else "RIGHTFIRE"]
        sky = s[20:130]
        demons = sky.any(-1) & ~(sky == self.LASER).all(-1)
        rows = np.flatnonzero(demons.sum(1) >= 2)
        if len(rows):
            d = np.flatnonzero(demons[max(0, rows[-1] - 8):rows[-1] + 1].any(0)).mean() - x
            if abs(d) > 4:
                return self.a["RIGHTFIRE" if d > 0 else "LEFTFIRE"]
        return self.a["FIRE"]


class Lookahead(_Expert):
    """Try each candidate action for `horizon` steps from a snapshot of the emulator; keep the best
    reward (the first candidate on ties)."""

    def __init__(self, candidates, horizon, env):
        self.candidates, self.horizon = candidates, horizon
        super().__init__(env)
        self.buttons = self.ale.getMinimalActionSet()

    def __call__(self, obs):
        state = self.ale.cloneState(include_rng=True)
        best = None
        for name in self.candidates:
            button, total = self.buttons[self.a[name]], 0.0
            for _ in range(self.horizon * FRAME_SKIP):
                total += self.ale.act(button)
            self.ale.restoreState(state)
            if best is None or total > best[0]:
                best = (total, name)
        return self.a[best[1]]


class Bowling(_Expert):
    """Move to lane position 3, roll, curve up 32 steps after the release."""

    LANE, CURVE_AFTER = 3, 32

    def reset(self, seed=None):
        self.rolling, self.k = False, 0

    def __call__(self, obs):
        r = self.ram()
        if self.rolling:
            if r[30] == 15 and r[29] == 8 and self.k > 10:  # ball back with the bowler
                self.rolling = False
            else:
                self.k += 1
                return self.a["UP" if self.k > self.CURVE_AFTER else "NOOP"]
        if r[40] != self.LANE:
            return self.a["UP" if r[40] < self.LANE else "DOWN"]
        self.rolling, self.k = True, 0
        return self.a["FIRE"]

    def taken(self, action) -> None:
        """A release it asked for but another policy did not make has not started a roll."""
        if self.rolling and self.k == 0 and action != self.a["FIRE"]:
            self.rolling = False


for _game, _expert, _kind in [
    ("Pong", partial(Paddle, "Pong"), "heuristic"),
    ("Breakout", partial(Paddle, "Breakout"), "heuristic"),
    ("Freeway", Freeway, "scripted"),
    ("Boxing", Boxing, "heuristic"),
    ("DemonAttack", DemonAttack, "heuristic"),
    ("Enduro", partial(Lookahead, ("FIRE", "RIGHTFIRE", "LEFTFIRE"), 6), "planner"),
    ("Bowling", Bowling, "scripted"),
    ("Atlantis", partial(Lookahead, ("NOOP", "FIRE", "RIGHTFIRE", "LEFTFIRE"), 12), "planner"),
]:
    register(Task(f"atari/{_game.lower()}", partial(make_atari, _game), _expert, _kind, MAX_STEPS,
                  description=f"ALE/{_game}-v5, minimal actions, frame skip 4, 80x80 RGB"))
