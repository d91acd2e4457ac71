"""Data commands: `gato tasks`, `gato scores`, `gato collect` and `gato data-report` (gato/envs,
gato/data hold the library they drive)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from gato.collection import collect_tasks
from gato.envs.registry import DOMAINS, SKIPPED, all_tasks, resolve
from gato.envs.scores import load_scores, write_scores
from gato.evaluation.reference import measure
from gato.io import folder_lock


def tasks(domain: str | None = None) -> list[dict]:
    """List every task: name, domain, observation and action modalities, expert, reference scores.

    Args:
        domain: only this domain.
    """
    if domain is not None and domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; domains: {', '.join(DOMAINS)}")
    ref = load_scores()
    rows = []
    for t in all_tasks(domain):
        s = ref.get(t.name, {})
        rows.append({"name": t.name, "domain": t.domain, "observation": s.get("observation", "?"),
                     "action": s.get("action", "?"), "expert": t.expert_kind,
                     "random_score": s.get("random", {}).get("mean"), "expert_score": s.get("expert", {}).get("mean")})
    fmt = "{:<42} {:<30} {:<16} {:<12} {:>12} {:>12}"
    print(fmt.format("task", "observation", "action", "expert kind", "random score", "expert score"))
    for r in rows:
        num = [f"{v:.1f}" if v is not None else "-" for v in (r["random_score"], r["expert_score"])]
        print(fmt.format(r["name"], r["observation"][:30], r["action"][:16], r["expert"], *num))
    by_domain = {}
    for r in rows:
        by_domain[r["domain"]] = by_domain.get(r["domain"], 0) + 1
    print(f"\n{len(rows)} tasks: " + ", ".join(f"{d} {n}" for d, n in sorted(by_domain.items())))
    for d, why in sorted(SKIPPED.items()):
        print(f"skipped domain {d}: {why}")
    return rows


def scores(tasks: tuple[str, ...] = ("all",), episodes: int = 50, seed: int = 10_000, workers: int = 1, *,
           out: Path, force: bool = False) -> dict[str, dict]:
    """Measure expert and random returns per task and write them to a scores file.

    Args:
        tasks: task or domain names, or "all".
        episodes: episodes per policy per task (the paper uses 50).
        seed: first reset seed (kept apart from collection seeds).
        workers: parallel processes.
        out: the scores file to write. The reference scores evaluation uses ship in the package
            (gato/envs/scores.json); re-measuring them is `--out gato/envs/scores.json --force`.
        force: update OUT when it exists (its measured tasks are replaced, the others kept).
    """
    from gato.envs import all_tasks, resolve
    from gato.rollout import parallel_map
    from tqdm import tqdm

    if episodes < 1 or workers < 1:
        raise ValueError(f"episodes and workers must be >= 1, got {episodes} and {workers}")
    path = Path(out)
    if path.exists() and not force:
        raise ValueError(f"--out {path} exists; pass --force to update it (measured tasks are replaced, the others "
                         "kept) or choose a new file")
    chosen = all_tasks() if tuple(tasks) == ("all",) else resolve(list(tasks))
    table = load_scores(path)
    jobs = [(t.name, who, episodes, seed) for t in chosen for who in ("expert", "random")]
    failed = []
    for name, who, res, spaces in tqdm(parallel_map(measure, jobs, workers), total=len(jobs), unit="task-policy"):
        if "error" in res:
            failed.append(f"{name} ({who}): {res['error']}")
            continue
        table.setdefault(name, {}).update(spaces, **{who: res})
        write_scores(path, table)  # after each result: a killed run keeps what it measured
    for t in chosen:
        e, r = table.get(t.name, {}).get("expert"), table.get(t.name, {}).get("random")
        if e and r:
            print(f"{t.name:<40} expert {e['mean']:>10.2f}  random {r['mean']:>10.2f}")
    for f in failed:
        print(f"failed: {f}")
    return table


def collect(targets: Positional[tuple[str, ...]] = (), suite: str | None = None, episodes: int = 100,
            test_episodes: int = -1, workers: int = 1, out: Path = Path("data"), seed: int = 0,
            shard_episodes: int = 16, progress: bool = True, vl_limit: int = 0,
            noise: float | Literal["auto"] = 0.0, decoy: float = 0.0, tasks: tuple[str, ...] = ()) -> dict:
    """Record expert episodes of tasks (or whole domains) into OUT/<domain>/<task>/{train,test};
    build vision-language and text sets into OUT/vl/<name>/ and OUT/text/corpus/.

    Args:
        targets: task names (e.g. control/cartpole), domains (e.g. babyai), vision-language sets
            (vl for all, or vl/scenes, vl/scenes-vqa, vl/openmoji, vl/digits, vl/babyai) and/or text.
        suite: also every task of this named suite (quick, demo, core, heldout; gato/suites.py).
        episodes: training episodes per task.
        test_episodes: held-out episodes per task (-1: a tenth of `episodes`, at least 1).
        workers: parallel processes.
        out: dataset root folder.
        seed: first reset seed of the training split (vision-language sets: their generation seed).
        shard_episodes: episodes per Parquet shard (a kill loses at most one shard per task).
        progress: show a progress bar.
        vl_limit: at most this many items per vision-language or text set (0: the whole set).
        noise: noise-injected demonstrations (DART): the executed action is perturbed, the recorded
            label is the expert's clean action. Continuous actions: Gaussian noise of this fraction
            of the half-range; discrete: a random action with this probability. "auto": the
            per-domain defaults of gato.experts.noise (docs/quality.md). Recorded in the card; a
            folder holds one noise level (collect another level into another --out).
        decoy: BabyAI levels whose mission names one object: collect EPISODES into the task's
            `decoy` split (beside its demonstrations; no test split), where an episode starts,
            with this probability, with the bot heading for another object while every step is
            labelled with the mission's action (gato.envs.babyai.DecoyExpert). Training keeps
            them all, like DAgger's. Recorded in the card; a folder holds one decoy level.
        tasks: more targets, given as in every other command (`--tasks`).
    """
    from gato.data.vl.sets import collect_sets, is_set_target
    from gato.suites import with_suite

    targets = with_suite(tuple(targets) + tuple(tasks), suite)
    if not targets:
        raise ValueError("name at least one task, domain or data set to collect (see `gato tasks`)")
    if episodes < 0 or test_episodes < -1:
        raise ValueError(f"episodes must be >= 0 and test_episodes >= -1, got {episodes} and {test_episodes}")
    if workers < 1 or shard_episodes < 1:
        raise ValueError(f"workers and shard_episodes must be >= 1, got {workers} and {shard_episodes}")
    if noise != "auto" and not (isinstance(noise, (int, float)) and 0.0 <= noise <= 1.0):
        raise ValueError(f"noise must be a number in [0, 1] or 'auto', got {noise!r}")
    sets = [t for t in targets if is_set_target(t)]
    control = [t for t in targets if not is_set_target(t)]
    resolve(control)  # an unknown task is an error before anything is written
    with folder_lock(out, "gato collect"):
        result = {"sets": collect_sets(sets, out, vl_limit, seed)} if sets else {}
        if control:
            result |= collect_tasks(control, episodes, test_episodes, workers, out, seed, shard_episodes, progress,
                                    noise, decoy)
    return result | {"out": str(out)}


def data_report(root: Positional[Path], tasks: tuple[str, ...] = ()) -> list[dict]:
    """Print what each task's demonstrations can teach: episodes, return, noise, action ids used
    and their entropy per dimension, observation spread. Near-constant experts stand out.

    Args:
        root: dataset root (made by `gato collect`).
        tasks: only these tasks (default: every task under ROOT).
    """
    from gato.config import get_preset
    from gato.data.datasets import find_tasks
    from gato.data.diagnostics import dataset_stats
    from gato.data.storage import TaskDataset
    from gato.tokenization.text import TextTokenizer

    tm, text = get_preset("gato-tiny").token_map, TextTokenizer.default()
    names = list(tasks) or find_tasks(Path(root))
    if not names:
        raise ValueError(f"no task datasets under {root} (make them with `gato collect`)")
    rows = []
    fmt = "{:<36} {:>5} {:>11} {:>6}  {:<22} {:<26} {:>9}"
    print(fmt.format("task", "eps", "return", "noise", "action ids per dim", "entropy (nats) per dim", "obs std"))
    for name in names:
        card = TaskDataset(root, name).card
        stats = dataset_stats(Path(root), name, tm, text)
        ret = card.get("splits", {}).get("train", {}).get("returns", {}).get("mean")
        row = {"task": name, "noise": card.get("noise", 0.0), "return": ret} | stats
        rows.append(row)
        short = lambda xs: " ".join(str(x) for x in xs[:6]) + (" ..." if len(xs) > 6 else "")  # noqa: E731
        print(fmt.format(name, stats.get("episodes", 0), "-" if ret is None else f"{ret:.1f}",
                         f"{row['noise']:.2f}", short(stats.get("action_ids_distinct", [])),
                         short(stats.get("action_entropy_nats", [])),
                         "-" if stats.get("observation_std") is None else f"{stats['observation_std']:.4f}"))
    return rows
