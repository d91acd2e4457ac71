"""BabyAI (minigrid): symbolic grid observations and the BabyAI bot as expert, as in the paper.

Every `BabyAI-*` level of gymnasium's registry that minigrid's shipped `BabyAIBot` solves
reliably (>= 90% of seeds) is a task `babyai/<Level>`; `EXCLUDED` lists the others and why.
Observations are the level's own: the agent's 7x7 egocentric view as (object, colour, state)
indices (147 discrete tokens), its direction, and the mission in English (text tokens).
Minigrid's declared spaces do not fit the tokenizers (a mission space with no charset, an image
box up to 255), so the adapter redeclares them with their real bounds. Success is what BabyAI
rewards: the episode terminates with reward > 0. The bot is minigrid's, with one guard: its
replanning can loop forever, so a step that needs too many searches raises `BotStuck`.
"""

from __future__ import annotations

import contextlib
import io
import re
import string
from functools import partial

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI levels)
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.envs.babyai.core.verifier import GoToInstr, ObjDesc, PickupInstr
from minigrid.utils.baby_ai_bot import BabyAIBot

from gato.envs.registry import Task, register
from gato.experts.noise import LabelledAction

# Episode cap per level: the level's own `max_steps` (room_size^2 * rooms, per navigation the
# mission needs); for levels whose missions vary in length, the most any mission can get.
MAX_STEPS = {
    "ActionObjDoor": 441, "BlockedUnlockPickup": 576, "BossLevel": 4608, "BossLevelNoUnlock": 4608,
    "FindObjS5": 500, "FindObjS6": 720, "FindObjS7": 980, "GoTo": 576, "GoToDoor": 441,
    "GoToImpUnlock": 576, "GoToLocal": 64, "GoToLocalS5N2": 25, "GoToLocalS6N2": 36,
    "GoToLocalS6N3": 36, "GoToLocalS6N4": 36, "GoToLocalS7N4": 49, "GoToLocalS7N5": 49,
    "GoToLocalS8N2": 64, "GoToLocalS8N3": 64, "GoToLocalS8N4": 64, "GoToLocalS8N5": 64,
    "GoToLocalS8N6": 64, "GoToLocalS8N7": 64, "GoToObj": 64, "GoToObjDoor": 576,
    "GoToObjMaze": 576, "GoToObjMazeOpen": 576, "GoToObjMazeS4": 144, "GoToObjMazeS4R2": 64,
    "GoToObjMazeS5": 225, "GoToObjMazeS6": 324, "GoToObjMazeS7": 441, "GoToObjS4": 16,
    "GoToObjS6": 36, "GoToOpen": 576, "GoToRedBall": 64, "GoToRedBallGrey": 64,
    "GoToRedBallNoDists": 64, "GoToRedBlueBall": 64, "GoToSeq": 2304, "GoToSeqS5R2": 400,
    "KeyCorridor": 1080, "KeyCorridorS3R1": 270, "KeyCorridorS3R2": 270, "KeyCorridorS3R3": 270,
    "KeyCorridorS4R3": 480, "KeyCorridorS5R3": 750, "KeyCorridorS6R3": 1080, "MiniBossLevel": 800,
    "MoveTwoAcrossS5N2": 400, "MoveTwoAcrossS8N9": 1024, "OneRoomS12": 144, "OneRoomS16": 256,
    "OneRoomS20": 400, "OneRoomS8": 64, "Open": 576, "OpenDoor": 576, "OpenDoorColor": 576,
    "OpenDoorDebug": 576, "OpenDoorLoc": 576, "OpenDoorsOrderN2": 720, "OpenDoorsOrderN4": 720,
    "OpenRedBlueDoors": 720, "OpenRedBlueDoorsDebug": 720, "OpenRedDoor": 50, "OpenTwoDoors": 720,
    "Pickup": 576, "PickupAbove": 288, "PickupDist": 49, "PickupDistDebug": 49, "PickupLoc": 64,
    "PutNextLocal": 128, "PutNextLocalS5N3": 50, "PutNextLocalS6N4": 72, "PutNextS4N1": 128,
    "PutNextS5N1": 200, "PutNextS5N2": 200, "PutNextS6N3": 288, "PutNextS7N4": 392, "Synth": 1152,
    "SynthLoc": 1152, "SynthS5R2": 300, "SynthSeq": 4608, "UnblockPickup": 576, "Unlock": 576,
    "UnlockLocal": 576, "UnlockLocalDist": 576, "UnlockPickup": 72, "UnlockPickupDist": 72,
}

# Levels of the registry left out, with the bot's success rate (20 seeds; 100 for UnlockToUnlock).
EXCLUDED = {
    "KeyInBox": "bot 0%: it may not open boxes (minigrid's bot docstring)",
    "PutNextS5N2Carrying": "bot 0%: its planner asserts on the object carried from the start",
    "PutNextS6N3Carrying": "bot 0%: its planner asserts on the object carried from the start",
    "PutNextS7N4Carrying": "bot 0%: its planner asserts on the object carried from the start",
    "OpenDoorsOrderN2Debug": "bot 35%: it opens doors out of order, which fails the Debug variant",
    "OpenDoorsOrderN4Debug": "bot 10%: it opens doors out of order, which fails the Debug variant",
    "UnlockToUnlock": "bot 59%: its planner loops (BotStuck) on 41% of seeds",
}

MAX_SEARCHES = 100  # breadth-first searches the bot may make for one action (at most 13 seen)
# Mission characters: BabyAI's grammar uses lowercase words, spaces and commas; allow a few more.
MISSION = spaces.Text(max_length=512, charset=string.ascii_letters + string.digits + " ,.'")
IMAGE_HIGH = np.broadcast_to(np.array([max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()),
                                       max(STATE_TO_IDX.values())], np.uint8), (7, 7, 3))


class BabyAIObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Redeclares the observation space tokenizably; adds info["success"]; silences resets."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.observation_space = spaces.Dict({
            "direction": spaces.Discrete(4),
            "image": spaces.Box(np.zeros_like(IMAGE_HIGH), IMAGE_HIGH.copy(), dtype=np.uint8),
            "mission": MISSION,
        })

    def reset(self, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):  # level generation prints its rejections
            return super().reset(**kwargs)

    def observation(self, obs):
        return {"direction": int(obs["direction"]), "image": obs["image"], "mission": obs["mission"]}

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["success"] = bool(terminated and reward > 0)
        return obs, reward, terminated, truncated, info


class BotStuck(RuntimeError):
    """The bot's planner loops without choosing an action."""


class _Bot(BabyAIBot):
    """BabyAIBot with a budget of searches per action, so that a looping plan raises."""

    budget = 0

    def _breadth_first_search(self, *args, **kwargs):
        self.budget -= 1
        if self.budget < 0:
            raise BotStuck(f"the BabyAI bot chose no action within {MAX_SEARCHES} searches")
        return super()._breadth_first_search(*args, **kwargs)


class BotExpert:
    """minigrid's BabyAIBot, rebuilt for each episode (it plans from the mission's instructions).

    It runs in BabyAI's advising mode: `taken(action)` tells it the action really executed (a
    noisy expert's or a learner's), and its next replan undoes or works around it. This is what
    lets it label states it did not choose (noise-injected demonstrations, DAgger). Where it
    fails (an assertion in its planner, or `BotStuck`; rare on the registered levels) it raises:
    collectors skip the episode."""

    def __init__(self, env: gym.Env):
        self.env = env
        self.bot, self.instrs = None, None
        self.suggested = self.last_taken = None

    def reset(self, seed=None):
        self.bot = self.suggested = self.last_taken = None

    def taken(self, action) -> None:
        """The action executed after the last suggestion (None when it was the suggestion)."""
        self.last_taken = None if int(action) == self.suggested else int(action)

    def __call__(self, obs):
        instrs = self.env.unwrapped.instrs
        if self.bot is None or instrs is not self.instrs:  # a new episode: plan from its mission
            self.bot, self.instrs = _Bot(self.env), instrs
        self.bot.budget = MAX_SEARCHES
        taken, self.last_taken = self.last_taken, None
        self.suggested = int(self.bot.replan(taken))
        return self.suggested


class _Seen:
    """The environment as a bot planning for another instruction sees it (minigrid's bot reads
    its goal from `env.unwrapped.instrs`, once, when it is built)."""

    def __init__(self, env: gym.Env, instrs):
        self._env, self.instrs = env.unwrapped, instrs

    @property
    def unwrapped(self):
        return self

    def __getattr__(self, name):
        return getattr(self._env, name)


OBJECT_KINDS = ("ball", "box", "key")  # what the go-to and pick-up levels place and name


def room_objects(u) -> list[tuple[str, str]]:
    """(type, colour) of every ball, box and key on an unwrapped level's grid."""
    return [(o.type, o.color) for o in u.grid.grid if o is not None and o.type in OBJECT_KINDS]


def describes(desc: ObjDesc, obj: tuple[str, str]) -> bool:
    """Whether a mission's object description (type and/or colour) fits a (type, colour) object."""
    return desc.type in (None, obj[0]) and desc.color in (None, obj[1])


def check_decoy(env: gym.Env, task: str = "") -> None:
    """Decoys need a mission that names one object (BabyAI's go-to and pick-up levels)."""
    instrs = getattr(env.unwrapped, "instrs", None)
    single = type(instrs) in (GoToInstr, PickupInstr)
    if not single or instrs.desc.loc is not None:
        raise ValueError(f"{task or 'this level'}: decoys need a mission naming one object to go to or pick up "
                         f"(BabyAI GoTo*/Pickup* levels), not {type(instrs).__name__}"
                         + (" with a location" if single else ""))


class DecoyExpert:
    """Demonstrations that must be read: the bot heads for another object, the label is the mission's.

    With probability `prob` an episode starts with a decoy phase: the executed actions are the
    bot's plan for an object the mission does not name, while each step is labelled by a bot
    planning afresh for the mission from that state. The phase ends at random (each step goes
    on with probability `stay`) or when the decoy would act on its object; the mission's bot then
    finishes the episode. In plain demonstrations the history already heads for the target, so
    a cloned policy can copy it without reading the mission (the copycat problem, Wen et al.
    2020); here the history heads elsewhere and only the mission says where to turn."""

    def __init__(self, env: gym.Env, prob: float, stay: float = 0.85):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"decoy must be a probability in [0, 1], got {prob}")
        self.env, self.prob, self.stay = env, prob, stay
        self.true = BotExpert(env)
        self.decoy: BotExpert | None = None
        self.rng, self.started = np.random.default_rng(), False

    def reset(self, seed=None):
        self.true.reset(seed)
        self.decoy, self.started = None, False
        self.rng = np.random.default_rng(None if seed is None else [seed, 0xDEC0])

    def _make_decoy(self) -> BotExpert | None:
        u = self.env.unwrapped
        check_decoy(self.env)
        others = sorted({o for o in room_objects(u) if not describes(u.instrs.desc, o)})
        if not others:
            return None
        instrs = type(u.instrs)(ObjDesc(*others[self.rng.integers(len(others))]))
        instrs.reset_verifier(u)
        return BotExpert(_Seen(self.env, instrs))

    def __call__(self, obs):
        if not self.started:
            self.started = True
            self.decoy = self._make_decoy() if self.rng.random() < self.prob else None
        if self.decoy is not None:
            lure = self.decoy(obs)
            if lure in (0, 1, 2) and self.rng.random() < self.stay:  # left, right, forward
                self.true.reset()  # plan for the mission from this state, not from the diverted plan
                return LabelledAction(lure, self.true(obs))
            self.decoy = None
            self.true.reset()
        return self.true(obs)

    def taken(self, action) -> None:
        if self.decoy is not None:
            self.decoy.taken(action)
        else:
            self.true.taken(action)


def _make(env_id: str, render_mode=None, sticky=False):
    return BabyAIObservation(gym.make(env_id, render_mode=render_mode))


def level_name(env_id: str) -> str:
    """'BabyAI-GoToLocal-v0' -> 'GoToLocal'."""
    return re.fullmatch(r"BabyAI-(.+)-v\d+", env_id).group(1)


def level_ids() -> list[str]:
    """Gymnasium ids of the registered levels, sorted."""
    return sorted(k for k in gym.registry if k.startswith("BabyAI-") and level_name(k) in MAX_STEPS)


for _id in level_ids():
    register(Task(f"babyai/{level_name(_id)}", partial(_make, _id), BotExpert, "bot",
                  MAX_STEPS[level_name(_id)], success=True, description=f"minigrid {_id}, BabyAI bot"))
