"""Named task suites: `--suite NAME` for `gato collect`, `gato train` and `gato eval`.

- quick: the 12 tasks `make demo` trains on from scratch in about 15 minutes (six domains).
- demo: the shipped gato-tiny's 22 tasks (six domains; short timesteps, experts far above random).
- core: 32 tasks covering all seven domains, the quality goal's suite (docs/quality.md): the
  demo suite plus Atari from pixels (4 games), more BabyAI levels (6 in all), Meta-World (5)
  and continuous LunarLander.
- heldout: 4 tasks in neither, for few-shot fine-tuning (`gato experiment finetune`).
"""

from __future__ import annotations

DEMO = (
    "control/cartpole", "control/mountaincar", "control/acrobot", "control/pendulum",
    "control/mountaincar-continuous", "box2d/lunarlander",
    "dmc/cartpole-balance", "dmc/cartpole-swingup", "dmc/point_mass-easy", "dmc/reacher-easy",
    "dmc/pendulum-swingup", "dmc/ball_in_cup-catch",
    "mujoco/inverted-pendulum", "mujoco/inverted-double-pendulum", "mujoco/reacher", "mujoco/hopper",
    "babyai/GoToRedBallNoDists", "babyai/GoToRedBall", "babyai/GoToObj", "babyai/GoToLocal",
    "metaworld/reach", "metaworld/button-press-topdown",
)

CORE = DEMO + (
    "atari/pong", "atari/breakout", "atari/boxing", "atari/freeway",
    "babyai/OpenRedDoor", "babyai/PickupDist",
    "metaworld/door-open", "metaworld/drawer-close", "metaworld/window-open",
    "box2d/lunarlander-continuous",
)

# `make demo`'s suite: six domains, 12 tasks whose short timesteps and informative experts a
# model trained from scratch for about 15 minutes on 2 CPU cores can learn (docs/quality.md).
QUICK = (
    "control/cartpole", "control/mountaincar", "control/acrobot", "control/mountaincar-continuous",
    "babyai/GoToRedBallNoDists", "babyai/GoToRedBall", "mujoco/inverted-pendulum", "mujoco/reacher",
    "dmc/cartpole-balance", "dmc/point_mass-easy", "box2d/lunarlander", "metaworld/reach",
)

# Held out of the demo and core suites' pretraining: the fine-tuning experiment's tasks (paper,
# section 5.2), each a neighbour of pretraining tasks (another BabyAI level and colour, sparse
# cartpole, the drawer's other direction).
HELDOUT = ("babyai/GoToRedBallGrey", "dmc/cartpole-balance_sparse", "babyai/GoToObjS4", "metaworld/drawer-open")

SUITES: dict[str, tuple[str, ...]] = {"quick": QUICK, "demo": DEMO, "core": CORE, "heldout": HELDOUT}


def suite(name: str) -> tuple[str, ...]:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    return SUITES[name]


def with_suite(targets: tuple[str, ...], name: str | None) -> tuple[str, ...]:
    """Targets plus a suite's tasks (in order, without repeats)."""
    out = list(targets) + (list(suite(name)) if name else [])
    return tuple(dict.fromkeys(out))
