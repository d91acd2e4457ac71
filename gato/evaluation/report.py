"""The evaluation report: report.md and report.html beside results.json, with the Figure 5 plot
(tasks above each normalised-score threshold), rliable's performance profile (episodes above
each threshold) and per-task bars as PNG files."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from gato import io


def _plots(results: dict, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    curve = results["overall"]["curve"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(100 * np.asarray(curve["thresholds"]), curve["tasks_at_or_above"], color="tab:blue")
    ax.axvline(50, color="grey", linestyle=":")
    ax.set_ylim(0, max(curve["tasks_at_or_above"], default=0) + 1)
    ax.set_xlabel("expert-normalised score threshold (%)")
    ax.set_ylabel("tasks at or above threshold")
    ax.set_title(f"Figure 5: {results['overall']['tasks_normalized']} tasks")
    fig.tight_layout()
    fig.savefig(out / "figure5.png", dpi=100)
    plt.close(fig)
    files["figure5"] = "figure5.png"

    if prof := results["overall"].get("profile"):
        taus = 100 * np.asarray(prof["taus"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(taus, prof["fraction"], color="tab:purple")
        ax.fill_between(taus, prof["lower"], prof["upper"], color="tab:purple", alpha=0.2)
        ax.axvline(50, color="grey", linestyle=":")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(r"expert-normalised score threshold $\tau$ (%)")
        ax.set_ylabel(r"fraction of episodes with score $> \tau$")
        ax.set_title("Performance profile (rliable, 95% band)")
        fig.tight_layout()
        fig.savefig(out / "profile.png", dpi=100)
        plt.close(fig)
        files["profile"] = "profile.png"

    tasks = [(n, t["normalized"]) for n, t in sorted(results["tasks"].items()) if t["normalized"] is not None]
    if tasks:
        fig, ax = plt.subplots(figsize=(7, 0.25 * len(tasks) + 1.2))
        ax.barh([n for n, _ in tasks], [100 * v for _, v in tasks], color="tab:green")
        ax.axvline(50, color="grey", linestyle=":")
        ax.axvline(100, color="black", linewidth=0.8)
        ax.invert_yaxis()
        ax.set_xlabel("expert-normalised score (%)")
        fig.tight_layout()
        fig.savefig(out / "tasks.png", dpi=100)
        plt.close(fig)
        files["tasks"] = "tasks.png"
    return files


def _pct(v) -> str:
    return "missing" if v is None else f"{100 * v:.1f}%"


def write_report(results: dict, out: Path) -> Path:
    """Write report.md, report.html and their plots into `out`; returns the markdown path."""
    out = Path(out)
    plots = _plots(results, out)
    lines = [f"# Evaluation of {results['checkpoint']} (step {results['step']})", "",
             f"{results['episodes']} episodes per task, temperature {results['temperature']}"
             + (f" (discrete actions {t})" if (t := results.get("discrete_temperature")) is not None else "") + "; "
             f"{results['overall']['tasks_above_50']} of {results['overall']['tasks_normalized']} "
             "normalised tasks at or above 50% of the expert.", "",
             "## Per domain", "", "| domain | tasks | mean | median | IQM (95% CI) | tasks >= 50% |",
             "|---|---|---|---|---|---|"]
    for d, s in results["domains"].items():
        lo, hi = s["iqm_ci"]
        lines.append(f"| {d} | {s['tasks']} | {_pct(s['mean'])} | {_pct(s['median'])} | "
                     f"{_pct(s['iqm'])} ({_pct(lo)} to {_pct(hi)}) | {s['above_50']} |")
    lines += ["", "Mean and median: of the tasks' mean scores; IQM: the interquartile mean of every episode "
              "of every task; intervals: 95% stratified bootstrap over episodes (rliable), the task set fixed.",
              "", "![Figure 5](figure5.png)"]
    if "profile" in plots:
        lines += ["", "![performance profile](profile.png)"]
    lines += ["", "## Per task", "",
              "| task | return (mean ± std) | random | expert | normalised | success |", "|---|---|---|---|---|---|"]
    for name, t in sorted(results["tasks"].items()):
        ref = ["-" if t[k] is None else f"{t[k]:.2f}" for k in ("random", "expert")]
        succ = "-" if t["success_rate"] is None else f"{100 * t['success_rate']:.0f}%"
        human = "" if t.get("human_normalized") is None else f" (human-normalised {_pct(t['human_normalized'])})"
        if t.get("normalized_ci"):
            human = f" ({_pct(t['normalized_ci'][0])} to {_pct(t['normalized_ci'][1])})" + human
        lines.append(f"| {name} | {t['mean']:.2f} ± {t['std']:.2f} | {ref[0]} | {ref[1]} | "
                     f"{_pct(t['normalized'])}{human} | {succ} |")
    if "tasks" in plots:
        lines += ["", "![per-task scores](tasks.png)"]
    if results.get("learning_curve"):
        from gato.evaluation.curve import plot_curve

        pts = results["learning_curve"]
        plot_curve(pts, out / "curve.png")
        lines += ["", "## Learning curve", "",
                  f"Mean expert-normalised score of {len(pts[-1]['scores'])} tasks during training "
                  f"({pts[-1]['scores'] and ', '.join(pts[-1]['scores'])}), a few episodes each "
                  "(`gato train --eval-every`).", "", "![learning curve](curve.png)"]
    lines += _vision_language(results.get("vision_language") or {})
    if results.get("videos"):
        lines += ["", "## Replays", ""] + [f"![{name}]({path})" for name, path in results["videos"].items()]
    md = "\n".join(lines) + "\n"
    _write(out / "report.md", md)
    _write(out / "report.html", _html(md))
    return out / "report.md"


def _vision_language(vl: dict) -> list[str]:
    """Held-out text, caption and VQA scores beside their chance levels."""
    if not vl:
        return []
    lines = ["", "## Vision and language", "", "| set | split | metric | score | chance |", "|---|---|---|---|---|"]
    for name, r in sorted(vl.items()):
        if r["kind"] == "text":
            lines.append(f"| {name} | test | perplexity ({r['tokens']} tokens) | {r['perplexity']:.1f} | - |")
        elif r["kind"] == "captions":
            lines += [f"| {name} | test | BLEU-4 ({r['images']} images) | {r['bleu4']:.3f} | {r['chance_bleu4']:.3f} |",
                      f"| {name} | test | CIDEr-D | {r['cider']:.3f} | {r['chance_cider']:.3f} |"]
        else:
            for split, v in r["splits"].items():
                lines.append(f"| {name} | {split} | VQA accuracy ({v['questions']} questions) | "
                             f"{_pct(v['accuracy'])} | {_pct(v['prior_accuracy'])} |")
                lines += [f"| {name} | {split} | {t} | {_pct(a)} | {_pct(v['prior_by_type'].get(t))} |"
                          for t, a in v["by_type"].items()]
    lines += ["", "Chance: captions of random training images (BLEU-4, CIDEr-D); the most common training "
              "answer of each question type (VQA)."]
    for name, r in sorted(vl.items()):
        ex = r.get("examples") or next(iter(r.get("splits", {}).values()), {}).get("examples")
        if ex:
            lines += ["", f"Examples from {name}:", ""] + [f"- {' / '.join(f'{k}: {v}' for k, v in e.items())}"
                                                         for e in ex[:3]]
    return lines


def _html(md: str) -> str:
    """A plain HTML rendering of the report's markdown (headings, tables, images, paragraphs)."""
    body, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                body.append("<table border='1' cellspacing='0' cellpadding='3'>")
                in_table = True
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](")
            body.append(f"<img alt='{html.escape(alt)}' src='{html.escape(src.rstrip(')'))}'>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    return "<!doctype html><html><head><meta charset='utf-8'><title>gato evaluation</title></head><body>\n" + \
        "\n".join(body) + "\n</body></html>\n"


def _write(path: Path, text: str) -> None:
    io.write_text(path, text)
