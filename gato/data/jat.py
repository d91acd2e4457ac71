"""Local copies of JAT's dataset (jat-dataset layout) as training and prompt data, with no card.

A JAT task folder (e.g. `babyai-go-to-red-ball/`) holds Parquet files, one episode per row, with
JAT's columns, which are our own format's (docs/tasks.md). `gato train --data ROOT` and
`gato eval --data ROOT` accept a ROOT that holds such folders (or is one) beside our own
`<domain>/<task>/` folders. Each folder's task is named from JAT's name (`registry_name`): BabyAI,
Meta-World and MuJoCo tasks get our registry's name, so their episodes are read with the spaces of
our environment and tokenized exactly as our collector's (tests/test_interop.py); Atari folders
hold 84x84 greyscale frames stacked by four, another observation than our Atari tasks' 80x80 RGB,
so they become `jat-atari/<game>` tasks whose image is the newest frame of each stack (the model
sees the older frames as earlier timesteps of its context, as it does for our own Atari).
"""

from __future__ import annotations

from pathlib import Path

# JAT's MuJoCo names -> ours (the rest are the same).
MUJOCO = {"doublependulum": "inverted-double-pendulum", "pendulum": "inverted-pendulum", "walker": "walker2d"}
DOMAINS = ("atari", "babyai", "metaworld", "mujoco")  # JAT's control domains


def registry_name(folder_name: str) -> str | None:
    """Our task name for a JAT task folder's name; None when it is not a JAT control task (its
    caption, VQA and text sets are not read as tasks)."""
    domain, _, rest = folder_name.partition("-")
    if domain not in DOMAINS or not rest:
        return None
    if domain == "babyai":  # go-to-red-ball-no-dists -> GoToRedBallNoDists
        return "babyai/" + "".join(part.capitalize() for part in rest.split("-"))
    if domain == "mujoco":
        return f"mujoco/{MUJOCO.get(rest, rest)}"
    if domain == "atari":
        return f"jat-atari/{rest}"
    return f"{domain}/{rest}"


def jat_folders(root: Path) -> dict[str, Path]:
    """Our task name -> JAT task folder, for ROOT itself or each folder directly in it: a folder
    named as a JAT control task, holding Parquet files and no dataset card."""
    root = Path(root)
    candidates = [root] if registry_name(root.name) else sorted(p for p in root.iterdir() if p.is_dir())
    out = {}
    for folder in candidates:
        name = registry_name(folder.name)
        if name and not (folder / "card.json").exists() and next(folder.rglob("*.parquet"), None):
            out[name] = folder
    return out
