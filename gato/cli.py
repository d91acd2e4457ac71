"""One CLI, `gato <command>`: each command is a typed function that is also the Python API.

tyro turns the function's signature and docstring into the command line; this module only
maps command names to functions (imported lazily so `gato --help` is fast).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys

COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("train",): ("gato.commands.train:train", "train a Gato model (resumable)"),
    ("inspect",): ("gato.commands.inspect:inspect", "print a training sequence as the model sees it"),
    ("demo",): ("gato.commands.demo:demo", "collect a suite, train gato-tiny on it, evaluate it (about 30 min on CPU)"),
    ("export",): ("gato.commands.train:export", "copy a checkpoint for sharing (weights, config, tokenizer)"),
    ("eval",): ("gato.commands.evaluate:evaluate", "evaluate a checkpoint on tasks: normalised scores per domain"),
    ("merge",): ("gato.commands.merge:merge", "average two checkpoints of one model (e.g. before and after a round)"),
    ("compare",): ("gato.commands.evaluate:compare", "two evaluations task by task: paired differences, intervals"),
    ("play",): ("gato.commands.evaluate:play", "run one episode with a checkpoint and save its video"),
    ("chat",): ("gato.commands.generate:chat", "continue text with a trained model (one-shot or interactive)"),
    ("caption",): ("gato.commands.generate:caption", "caption image files with a trained model"),
    ("vqa",): ("gato.commands.generate:vqa", "answer a question about an image with a trained model"),
    ("presets",): ("gato.commands.model:presets", "list the model presets and their sizes"),
    ("tasks",): ("gato.commands.data:tasks", "list every control task with its modalities, expert and scores"),
    ("scores",): ("gato.commands.data:scores", "measure expert and random reference scores per task"),
    ("collect",): ("gato.commands.data:collect", "record expert episodes of tasks or domains into datasets"),
    ("data-report",): ("gato.commands.data:data_report", "what each task's demonstrations can teach"),
    ("mixture",): ("gato.commands.train:mixture", "a training mixture's share of rows and of the loss per source"),
    ("minari", "import"): ("gato.commands.minari:minari_import", "convert a local Minari dataset into a task folder"),
    ("minari", "export"): ("gato.commands.minari:minari_export", "write a task's episodes as a Minari dataset"),
    ("finetune",): ("gato.commands.finetune:finetune", "fine-tune a checkpoint on a few demonstrations of a task"),
    ("dagger",): ("gato.commands.dagger:dagger", "DAgger rounds: learner rollouts labelled by the experts, more training"),
    ("experts", "train-ars"): ("gato.commands.experts:ars_train", "train a linear ARS locomotion expert (MuJoCo)"),
    ("tokenizer", "train"): ("gato.commands.tokenizer:tokenizer_train", "train a SentencePiece text tokenizer offline"),
    ("bench", "train"): ("gato.commands.bench.training:bench_train", "training throughput vs a bare transformer"),
    ("bench", "act"): ("gato.commands.bench.acting:bench_act", "actions/s with the KV cache vs recomputing the window"),
    ("bench", "eval"): ("gato.commands.bench.acting:bench_eval", "evaluation steps/s with N environments batched vs one"),
    ("bench", "collect"): ("gato.commands.bench.training:bench_collect", "recording expert episodes vs bare env stepping"),
    ("bench", "generate"): ("gato.commands.bench.acting:bench_generate", "text tokens/s with the KV cache vs recomputing"),
    ("bench", "precision"): ("gato.commands.bench.precision:bench_precision",
                             "bf16 vs fp32 inference: same action tokens? how much faster?"),
    ("bench", "memory"): ("gato.commands.bench.memory:bench_memory", "peak memory of training and acting per preset"),
    ("experiment", "finetune"): ("gato.commands.experiment:experiment_finetune",
                                 "few-shot fine-tuning on held-out tasks vs from scratch (Figure 9)"),
    ("experiment", "prompts"): ("gato.commands.experiment:experiment_prompts",
                                "a checkpoint with its own, no, or another task's demonstration prompt"),
    ("experiment", "scaling"): ("gato.commands.experiment:experiment_scaling",
                                "model sizes trained on equal tokens: score against tokens (Figure 8)"),
    ("experiment", "mission"): ("gato.commands.experiment:experiment_mission",
                                "does a checkpoint read BabyAI's mission? first pickups against chance"),
    ("scaling",): ("gato.commands.model:scaling", "tokens, memory and hours per preset at the paper's scale"),
}


def _load(target: str):
    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    fn.__doc__ = _joined_args(fn.__doc__ or "")
    return fn


def _joined_args(doc: str) -> str:
    """The docstring with each argument's continuation lines joined to it: tyro keeps a
    function's line breaks inside an option's help, which then breaks mid-sentence."""
    out, indent = [], None  # indent: of the argument lines, inside an Args: section
    for line in doc.splitlines():
        depth = len(line) - len(line.lstrip())
        if line.strip() == "Args:":
            indent = -1
        elif indent is not None and line.strip():
            if indent < 0:
                indent = depth
            elif depth > indent:
                out[-1] += " " + line.strip()
                continue
            elif depth < indent:
                indent = None
        out.append(line)
    return "\n".join(out)


def _usage(group: str | None = None) -> str:
    """Every command, or those of one group (`gato bench --help`)."""
    prog = f"gato {group}" if group else "gato"
    lines = [f"usage: {prog} <command> [options]   ({prog} <command> --help for its options)", "", "commands:"]
    for key, (_, summary) in COMMANDS.items():
        if group is None or key[0] == group:
            lines.append(f"  {' '.join(key):<18} {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import tyro

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        from importlib.metadata import version

        print(f"gato {version('gato-agent')}")
        return
    key = next((k for k in sorted(COMMANDS, key=len, reverse=True) if tuple(argv[:len(k)]) == k), None)
    groups = {k[0] for k in COMMANDS if len(k) > 1}
    if key is None and argv[:1] and argv[0] in groups and argv[1:2] in (["-h"], ["--help"]):
        print(_usage(argv[0]))
        return
    if key is None:
        print(_usage())
        known = {k[0] for k in COMMANDS}
        if argv and argv[0] not in ("-h", "--help"):
            words = [a for a in argv[:2] if not a.startswith("-")][:2 if argv[0] in known else 1]
            names = [" ".join(k) for k in COMMANDS]
            group = [n for n in names if n.startswith(argv[0] + " ")] if argv[0] in known else names
            close = difflib.get_close_matches(" ".join(words), group, n=3, cutoff=0.6) or \
                (group if argv[0] in known else [])
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            print(f"\nerror: unknown command {' '.join(words)!r}{hint}", file=sys.stderr)
            sys.exit(2)
        return
    fn = _load(COMMANDS[key][0])
    try:
        tyro.cli(fn, args=argv[len(key):], prog=f"gato {' '.join(key)}")
    except (ValueError, FileNotFoundError, TypeError, FloatingPointError, MemoryError) as e:
        if os.environ.get("GATO_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a full or read-only disk, a folder where a file was expected, ...
        if os.environ.get("GATO_DEBUG"):
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # anything else still ends in one line; GATO_DEBUG=1 shows the traceback
        if os.environ.get("GATO_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e} (GATO_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
