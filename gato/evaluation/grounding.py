"""Does a policy read BabyAI's mission? The first object it picks up in PickupDist, against chance.

PickupDist puts five objects in one room and names one by colour, type or both. A policy that
does not read the mission still succeeds by chance (or by picking up, dropping and trying
again), so the success rate alone cannot tell reading from luck. This probe runs each layout
(reset seed) twice, to the first pickup:
- with the true mission: does the first object picked up match it? Chance is the share of the
  room's objects that match;
- with a made-up mission naming another object, the only one of its colour and type in the room:
  does the policy pick that one? Chance is one in the number of objects.
A policy that reads is far above both chances; one that does not sits at them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from gato.envs.babyai import describes, room_objects

LEVEL = "babyai/PickupDist"


class Policy(Protocol):
    def __call__(self, observation: Any) -> int: ...


def made_up_mission(u, seed: int) -> tuple[str, tuple[str, str]] | None:
    """A mission naming an object the true one does not, alone of its colour and type (None: none)."""
    objs = room_objects(u)
    others = sorted({o for o in objs if not describes(u.instrs.desc, o) and objs.count(o) == 1})
    if not others:
        return None
    named = others[np.random.default_rng(seed).integers(len(others))]
    return f"pick up the {named[1]} {named[0]}", named


def first_pickup(env, policy: Policy, seed: int, made_up: bool) -> dict | None:
    """One run of a layout to the first pickup (None: no made-up mission fits this layout)."""
    obs, _ = env.reset(seed=seed)
    u = env.unwrapped
    objs, named, mission = room_objects(u), None, None
    if made_up:
        fake = made_up_mission(u, seed)
        if fake is None:
            return None
        mission, named = fake
    got = None
    for _ in range(u.max_steps):
        obs, _, terminated, truncated, _ = env.step(policy(obs if mission is None else dict(obs, mission=mission)))
        if u.carrying is not None:
            got = (u.carrying.type, u.carrying.color)
            break
        if terminated or truncated:
            break
    return {"picked": got, "true": got is not None and describes(u.instrs.desc, got),
            "named": got is not None and named == got,
            "chance_true": sum(describes(u.instrs.desc, o) for o in objs) / len(objs), "chance_named": 1 / len(objs)}


def mission_probe(make_policy: Callable[[Any, int], Policy], seeds: list[int]) -> dict:
    """Counts over `seeds` for a policy made fresh per episode by `make_policy(env, seed)`."""
    from gato.envs import get_task

    env = get_task(LEVEL).make()
    true = [first_pickup(env, make_policy(env, s), s, False) for s in seeds]
    fake = [r for r in (first_pickup(env, make_policy(env, s), s, True) for s in seeds) if r is not None]
    picked_true = [r for r in true if r["picked"] is not None]
    picked_fake = [r for r in fake if r["picked"] is not None]
    return {
        "layouts": len(true),
        "true_matches": sum(r["true"] for r in true), "true_chance": sum(r["chance_true"] for r in true),
        "true_no_pickup": len(true) - len(picked_true),
        "true_chance_picked": sum(r["chance_true"] for r in picked_true),
        "made_up_layouts": len(fake),
        "made_up_followed": sum(r["named"] for r in fake), "made_up_chance": sum(r["chance_named"] for r in fake),
        "made_up_true_target": sum(r["true"] for r in fake),
        "made_up_no_pickup": len(fake) - len(picked_fake),
        "made_up_chance_picked": sum(r["chance_named"] for r in picked_fake),
    }


def probe_table(r: dict) -> str:
    """Counts over all layouts, and over those with a pickup (a policy may learn not to pick up
    rather than to choose: then only the second says whether its choices read the mission)."""
    rows = [("true mission", r["true_matches"], r["layouts"], r["true_chance"], r["true_no_pickup"],
             r["true_chance_picked"]),
            ("made-up mission", r["made_up_followed"], r["made_up_layouts"], r["made_up_chance"],
             r["made_up_no_pickup"], r["made_up_chance_picked"])]
    return "\n".join(["| run | first pickup as named | chance (uniform choice among the room's objects) | no pickup "
                      "| as named, of the runs with a pickup (chance) |", "|---|---|---|---|---|"]
                     + [f"| {name} | {hit} of {n} | {chance:.1f} | {none} | {hit} of {n - none} ({picked:.1f}) |"
                        for name, hit, n, chance, none, picked in rows])
