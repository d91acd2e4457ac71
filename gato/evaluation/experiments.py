"""The paper's experiments at our scale: their result files, tables and plots.

Each experiment is a grid of cells (e.g. task x demonstrations x pretrained-or-scratch); a cell's
result is one JSON file in the experiment folder, written when the cell finishes, so a killed
experiment resumes from the cells it has. `experiment.json` keeps the command and its
arguments; `results.md` and the plot are rebuilt from the cells each time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gato.io import read_json, write_json, write_text


def cell_name(*keys) -> str:
    """A cell's name in file and folder names: its keys joined, task slashes made underscores."""
    return "-".join(str(k).replace("/", "_") for k in keys)


def cell_path(folder: Path, *keys) -> Path:
    return Path(folder) / "cells" / f"{cell_name(*keys)}.json"


def done(folder: Path, *keys) -> dict | None:
    """A finished cell's result, or None."""
    path = cell_path(folder, *keys)
    return read_json(path, "experiment cell") if path.exists() else None


def record(folder: Path, result: dict, *keys) -> dict:
    write_json(cell_path(folder, *keys), result)
    return result


def start(folder: Path, command: str, args: dict) -> None:
    """Write experiment.json (the command and its arguments); a resumed run must use the same ones."""
    path = Path(folder) / "experiment.json"
    spec = {"command": command, "args": json.loads(json.dumps(args, default=str))}
    if path.exists():
        old = read_json(path, "experiment file")
        if old != spec:
            raise ValueError(f"{path}: this folder holds another experiment ({old['command']} with "
                             f"{old['args']}); use a new --out to run {command} with these arguments")
    else:
        write_json(path, spec)


def finetune_table(cells: list[dict]) -> str:
    """Figure 9 as a table: per task and number of demonstrations, pretrained vs from scratch."""
    rows = ["| task | demonstrations | pretrained | from scratch | difference |", "|---|---|---|---|---|"]
    by = {(c["task"], c["episodes"], c["scratch"]): c.get("normalized") for c in cells}
    for task, n in sorted({(t, n) for t, n, _ in by}):
        pre, scr = by.get((task, n, False)), by.get((task, n, True))
        diff = f"{100 * (pre - scr):+.1f} pp" if pre is not None and scr is not None else "-"
        rows.append(f"| {task} | {n} | {_pct(pre)} | {_pct(scr)} | {diff} |")
    return "\n".join(rows)


def finetune_plot(cells: list[dict], path: Path) -> None:
    """Figure 9: expert-normalised score against demonstrations, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c["task"] for c in cells})
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for scratch, label, color in ((False, "pretrained", "tab:blue"), (True, "from scratch", "tab:orange")):
            pts = sorted((c["episodes"], c["normalized"]) for c in cells
                         if c["task"] == task and c["scratch"] == scratch and c.get("normalized") is not None)
            if pts:
                ax.plot(*zip(*[(n, 100 * v) for n, v in pts]), marker="o", label=label, color=color)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("demonstrations")
    axes[0][0].set_ylabel("expert-normalised score (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prompts_table(cells: list[dict]) -> str:
    """The prompt ablation: each task with its own prompt, none, and another task's."""
    rows = ["| task | seen in training | own prompt | no prompt | another task's prompt |", "|---|---|---|---|---|"]
    by = {(c["task"], c["prompt"]): c for c in cells}
    for task in sorted({c["task"] for c in cells}):
        seen = next(c["seen"] for c in cells if c["task"] == task)
        row = [_pct(by[(task, p)]["normalized"]) if (task, p) in by else "-" for p in ("own", "none", "other")]
        other = by.get((task, "other"), {}).get("prompt_task")
        rows.append(f"| {task} | {'yes' if seen else 'no'} | {row[0]} | {row[1]} | {row[2]}"
                    + (f" ({other})" if other else "") + " |")
    means = [np.mean([c["normalized"] for c in cells if c["prompt"] == p and c["normalized"] is not None] or [np.nan])
             for p in ("own", "none", "other")]
    rows.append("| **mean** | | " + " | ".join("-" if np.isnan(m) else f"**{100 * m:.1f}%**" for m in means) + " |")
    return "\n".join(rows)


def prompts_plot(cells: list[dict], path: Path) -> None:
    """The prompt ablation as grouped bars: per task, its own prompt, none, another task's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c["task"] for c in cells})
    by = {(c["task"], c["prompt"]): c.get("normalized") for c in cells}
    fig, ax = plt.subplots(figsize=(1.3 * len(tasks) + 2, 3.4))
    for j, (kind, label) in enumerate((("own", "own prompt"), ("none", "no prompt"), ("other", "another task's"))):
        ax.bar([i + 0.27 * (j - 1) for i in range(len(tasks))], [100 * (by.get((t, kind)) or 0) for t in tasks],
               0.27, label=label)
    ax.set_xticks(range(len(tasks)), [t + (" (held out)" if not next(c["seen"] for c in cells if c["task"] == t)
                                           else "") for t in tasks], rotation=25, ha="right", fontsize=7)
    ax.set_ylabel("% of expert score")
    ax.axhline(0, color="grey", lw=0.6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scaling_table(cells: list[dict]) -> str:
    """Figure 8 as a table: per model size at equal tokens, the final mean normalised score and
    the training loss (mean of its last five logged values: the data is seen about once, so it
    is close to a held-out loss)."""
    rows = ["| preset | parameters | training tokens | training loss | mean score | tasks >= 50% | CPU-hours |",
            "|---|---|---|---|---|---|---|"]
    for c in sorted(cells, key=lambda c: c["params"]):
        last = c["curve"][-1] if c["curve"] else {}
        losses = [h["loss"] for h in c.get("history", [])][-5:]
        loss = f"{np.mean(losses):.3f}" if losses else "-"
        rows.append(f"| {c['preset']} | {c['params'] / 1e6:.1f}M | {c['tokens'] / 1e6:.2f}M | {loss} "
                    f"| {_pct(last.get('mean'))} | {last.get('above_50', '-')} of {len(last.get('scores', {}))} "
                    f"| {c['seconds'] / 3600:.2f} |")
    return "\n".join(rows)


def scaling_plot(cells: list[dict], path: Path) -> None:
    """Figure 8: mean expert-normalised score and training loss against training tokens, one line
    per model size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (score, loss) = plt.subplots(1, 2, figsize=(9, 3.4))
    for c in sorted(cells, key=lambda c: c["params"]):
        label = f"{c['preset']} ({c['params'] / 1e6:.1f}M)"
        if pts := [(p["tokens"] / 1e6, 100 * (p["mean"] or 0)) for p in c["curve"]]:
            score.plot(*zip(*pts), marker="o", label=label)
        per_step = c["tokens"] / max(1, c.get("steps", 1))
        if pts := [(h["step"] * per_step / 1e6, h["loss"]) for h in c.get("history", [])]:
            loss.plot(*zip(*pts), lw=1, label=label)
    score.set(xlabel="training tokens (millions)", ylabel="mean % of expert score", title="score")
    loss.set(xlabel="training tokens (millions)", ylabel="training loss", title="loss")
    score.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(folder: Path, title: str, table: str, notes: str = "") -> Path:
    path = Path(folder) / "results.md"
    write_text(path, f"# {title}\n\n{table}\n" + (f"\n{notes}\n" if notes else ""))
    return path


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
