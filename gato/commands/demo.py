"""`gato demo` (`make demo`): the whole idea end to end on one CPU in about half an hour.

Three stages, each resumable, each skipped when a previous run finished it:
1. collect expert episodes of a suite of control tasks from six domains, the caption/VQA sets
   and the text corpus (`gato collect`);
2. train gato-tiny on that mixture (`gato train`, 85% control, 15% vision and language);
3. evaluate it (`gato eval`): normalised scores per task and domain, VL metrics, report.
A domain whose simulator is not installed is skipped with a message. Nothing is downloaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from gato.suites import QUICK

SUITE = QUICK  # six domains, tasks a from-scratch model learns in the demo's minutes
VL_SETS = ("vl", "text")


def available(tasks: tuple[str, ...]) -> list[str]:
    """The tasks whose simulator is installed; says which domains are skipped and why."""
    from gato.envs import get_task
    from gato.envs.registry import SKIPPED

    out, skipped = [], set()
    for name in tasks:
        try:
            get_task(name)
            out.append(name)
        except ValueError as e:
            domain = name.split("/")[0]
            if domain in SKIPPED:
                if domain not in skipped:
                    print(f"skipping domain {domain}: {SKIPPED[domain]}")
                skipped.add(domain)
            else:
                raise ValueError(f"demo suite: {e}") from None
    return out


def demo(out: Path = Path("runs/demo"), tasks: tuple[str, ...] = SUITE, episodes: int = 20, steps: int = 800,
         train_minutes: float = 15.0, batch_size: int = 16, context: int = 512, eval_episodes: int = 10,
         vl_limit: int = 0, vl_examples: int = 100, workers: int = 2, videos: int = 2,
         noise: float | Literal["auto"] = "auto") -> dict:
    """Collect a suite, train gato-tiny on it with vision and language, evaluate it and write the
    report; run again after an interruption and finished stages are reused.

    Args:
        out: demo folder: data/, model/ (checkpoints), eval/ (results.json, report.md/.html).
        tasks: control tasks of the suite (a missing simulator skips its domain).
        episodes: expert episodes collected per task.
        steps: training steps (the run also stops after `train_minutes`, resumably).
        train_minutes: training time limit of this run.
        batch_size: sequences per step.
        context: tokens per sequence.
        eval_episodes: evaluation episodes per task (also the number of environments in lock step).
        vl_limit: items per vision-language set (0: all).
        vl_examples: held-out examples scored per vision-language set.
        workers: collection processes.
        videos: replay GIFs in the report.
        noise: noise-injected demonstrations (`gato collect --noise`; auto: per-domain levels).
    """
    from gato.commands.data import collect
    from gato.commands.evaluate import evaluate
    from gato.commands.train import train
    from gato.training import checkpoint as ckpt

    out = Path(out)
    data, model, report = out / "data", out / "model", out / "eval"
    t0 = time.perf_counter()
    suite = available(tuple(tasks))
    print(f"== 1/3 collect: {len(suite)} control tasks, caption/VQA sets and text -> {data}")
    collect(tuple(suite) + VL_SETS, episodes=episodes, workers=workers, out=data, vl_limit=vl_limit, noise=noise)

    latest = ckpt.latest_checkpoint(model) if model.exists() else None
    step = ckpt.load_meta(latest)["step"] if latest else 0
    print(f"\n== 2/3 train gato-tiny -> {model}" + (f" (resuming at step {step})" if step else ""))
    if step < steps:
        # the shipped recipe's levers (docs/quality.md), on the demo's shorter schedule
        train(out=model, recipe="gato-tiny", steps=steps, batch_size=batch_size, context=context, data=str(data),
              warmup=min(200, steps // 10), checkpoint_every=max(50, steps // 20), resume=latest is not None,
              max_minutes=train_minutes)
        latest = ckpt.latest_checkpoint(model)
        if ckpt.load_meta(latest)["step"] < steps:
            print(f"\ntraining reached its {train_minutes:g}-minute limit at {latest.name} (a slow or busy "
                  "machine); evaluating that checkpoint. Run the demo again to train on to the end.")

    results_file = report / "results.json"
    if results_file.exists() and json.loads(results_file.read_text()).get("checkpoint") == str(latest):
        print(f"\n== 3/3 evaluate: already done for {latest.name}")
        results = json.loads(results_file.read_text())
    else:
        print(f"\n== 3/3 evaluate {latest.name} on {len(suite)} tasks and the vision-language sets -> {report}")
        results = evaluate(latest, tasks=tuple(suite), episodes=eval_episodes, envs=eval_episodes, out=report,
                           data=data, vl_examples=vl_examples, videos=videos, force=True)
    print(f"\ndone in {(time.perf_counter() - t0) / 60:.1f} minutes. Report: {report / 'report.md'} "
          f"(and report.html). Summary:")
    summary(results)
    beside_shipped(results)
    return results


SHIPPED_RESULTS = Path(__file__).resolve().parents[2] / "checkpoints" / "gato-tiny" / "report" / "results.json"


def beside_shipped(results: dict, shipped: Path = SHIPPED_RESULTS) -> None:
    """Per-domain scores of the demo's model next to the shipped checkpoint's (trained for hours)."""
    if not shipped.exists():
        return
    ref = json.loads(shipped.read_text())
    print(f"\n  {'domain':<10} {'this demo':>10} {'shipped gato-tiny':>18}   (mean % of expert; tasks >= 50%)")
    for d in sorted(set(results["domains"]) | set(ref["domains"])):
        a, b = results["domains"].get(d), ref["domains"].get(d)
        fmt = lambda s: "-" if s is None else f"{100 * s['mean']:.0f}% ({s['above_50']})"  # noqa: E731
        print(f"  {d:<10} {fmt(a):>10} {fmt(b):>18}")
    o, r = results["overall"], ref["overall"]
    print(f"  {'overall':<10} {o['tasks_above_50']:>4} of {o['tasks_normalized']:<3} "
          f"{r['tasks_above_50']:>10} of {r['tasks_normalized']}")


def summary(results: dict) -> None:
    """Per-domain scores and the vision-language figures beside their chance levels."""
    for d, s in results["domains"].items():
        print(f"  {d:<10} {s['tasks']:>2} tasks  mean {100 * s['mean']:6.1f}% of expert  above 50%: {s['above_50']}")
    o = results["overall"]
    print(f"  overall    {o['tasks_above_50']} of {o['tasks_normalized']} tasks at or above 50% of the expert")
    for name, r in (results.get("vision_language") or {}).items():
        if r["kind"] == "captions":
            print(f"  {name:<16} CIDEr-D {r['cider']:.3f} (chance {r['chance_cider']:.3f})")
        elif r["kind"] == "vqa":
            for split, v in r["splits"].items():
                print(f"  {name} {split:<8} VQA {100 * v['accuracy']:.1f}% (prior {100 * v['prior_accuracy']:.1f}%)")
        else:
            print(f"  {name:<16} perplexity {r['perplexity']:.1f}")
