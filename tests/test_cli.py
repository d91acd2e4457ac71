"""The CLI end to end: each command parses, runs, and reports bad input as a clear error (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gato.cli import main
from gato.tokenization.text import TextTokenizer
from gato.training import checkpoint as ckpt
from gato.training.loading import load_model


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_usage_lists_commands_and_rejects_unknown(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "bench train" in out and "tokenizer train" in out
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "unknown command 'frobnicate'" in err
    code, _, err = run(capsys, "bench")
    assert code == 2 and "bench train" in err
    code, _, err = run(capsys, "trian", "--steps", "1")  # a typo: the closest command, without the flags
    assert code == 2 and "unknown command 'trian' (did you mean: train?)" in err
    code, _, err = run(capsys, "bench", "trian")
    assert code == 2 and "unknown command 'bench trian' (did you mean: bench train" in err


def test_every_option_help_is_one_paragraph():
    """tyro keeps a docstring's line breaks inside an option's help; the CLI joins them."""
    from tyro._docstrings import parse_docstring_from_object

    from gato.cli import COMMANDS, _load

    for target, _ in COMMANDS.values():
        helps = parse_docstring_from_object(_load(target))
        assert not [name for name, text in helps.items() if "\n" in text], target
    assert len(COMMANDS) > 30 and "the number of the first round, to continue from another checkpoint and the " \
        "aggregate" in parse_docstring_from_object(_load(COMMANDS["dagger",][0]))["first_round"]


def test_a_command_group_help_lists_its_commands(capsys):
    code, out, _ = run(capsys, "bench", "--help")
    assert code == 0 and "usage: gato bench <command>" in out and "bench memory" in out and "tokenizer" not in out


def test_presets(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    assert all(name in out for name in ("gato-tiny", "gato-79m", "gato-364m", "gato-1.18b"))


def test_inspect_prints_the_layout(capsys):
    code, out, _ = run(capsys, "inspect", "--source", "toy/track", "--count", "12", "--context", "64")
    assert code == 0
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 12
    assert any("SEPARATOR" in r for r in rows) and any("CONTINUOUS_ACTION" in r for r in rows)
    # A continuous action row carries the loss mask 1; an observation row 0.
    act = next(r for r in rows if "CONTINUOUS_ACTION" in r).split()
    obs = next(r for r in rows if "CONTINUOUS_OBS" in r).split()
    assert act[4] == "1" and obs[4] == "0"


def test_inspect_unknown_source(capsys):
    code, _, err = run(capsys, "inspect", "--source", "toy/nope")
    assert code == 2 and "toy/find-square" in err


def test_inspect_a_collected_task(capsys, tmp_path):
    from gato.commands.data import collect

    collect(("control/cartpole",), episodes=2, test_episodes=1, out=tmp_path, progress=False)
    code, out, _ = run(capsys, "inspect", "--source", "control/cartpole", "--data", str(tmp_path), "--count", "20")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert code == 0 and {"CONTINUOUS_OBS", "DISCRETE_ACTION", "SEPARATOR"} <= {r[1] for r in rows}
    assert all(r[4] == ("1" if r[1] == "DISCRETE_ACTION" else "0") for r in rows)  # loss on actions only
    code, _, err = run(capsys, "inspect", "--source", "control/cartpol", "--data", str(tmp_path))
    assert code == 2 and "valid sources:" in err and "control/cartpole" in err


def test_train_unknown_preset_lists_valid(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--preset", "gato-2b", "--out", str(tmp_path / "r"))
    assert code == 2 and "gato-2b" in err and "gato-1.18b" in err
    assert not (tmp_path / "r").exists()


def test_train_and_resume_from_cli(capsys, tmp_path):
    out = str(tmp_path / "run")
    args = ("train", "--out", out, "--batch-size", "1", "--context", "32", "--warmup", "1",
            "--checkpoint-every", "2", "--no-progress")
    assert run(capsys, *args, "--steps", "2")[0] == 0
    code, _, err = run(capsys, *args, "--steps", "3")
    assert code == 2 and "--resume" in err
    code, out_text, _ = run(capsys, *args, "--steps", "3", "--resume")
    assert code == 0 and "resumed" in out_text
    assert ckpt.load_meta(ckpt.latest_checkpoint(tmp_path / "run"))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["step"] == 2
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*")), "no TensorBoard logs"
    model, meta = load_model(tmp_path / "run")
    assert meta["step"] == 3 and not model.training
    assert meta["tokenizer"]["sha256"] == TextTokenizer.default().sha256


def test_bench_train_json(capsys):
    code, out, _ = run(capsys, "bench", "train", "--batch-size", "1", "--context", "64", "--rounds", "1",
                       "--steps-per-round", "1", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["bench"] == "train" and result["context"] == 64
    assert result["tokens_per_s"] > 0 and result["ratio"] == pytest.approx(
        result["tokens_per_s"] / result["baseline_tokens_per_s"], rel=0.01)
    # every figure names its CPU: the model as lscpu prints it, and the bf16 matrix units
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), None)
    assert result["machine"]["cpu"] == model
    assert result["machine"]["bf16_units"] == [f for f in ("amx_bf16", "avx512_bf16") if f" {f}" in cpuinfo]


def test_bench_eval_json(capsys):
    code, out, _ = run(capsys, "bench", "eval", "--envs", "3", "--steps", "2", "--rounds", "1", "--device", "cpu",
                       "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["bench"] == "eval" and result["device"] == "cpu" and result["envs"] == 3 and result["steps"] == 2
    assert result["steps_per_s"] > 0 and result["ratio"] == pytest.approx(
        result["steps_per_s"] / result["single_env_steps_per_s"], rel=0.01)


def test_bench_collect_json(capsys):
    code, out, _ = run(capsys, "bench", "collect", "--tasks", "control/cartpole", "--episodes", "2", "--rounds", "3",
                       "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    v = result["tasks"]["control/cartpole"]
    assert v["bare_steps_per_s"] > 0 and v["recorded_steps_per_s"] > 0
    low, high = v["ratio_range"]  # the median of the rounds' ratios lies within them
    assert 0 < low <= v["ratio"] <= high and result["min_ratio"] == v["ratio"]


def test_bench_generate_json_with_the_transformers_peer(capsys):
    pytest.importorskip("transformers")
    code, out, _ = run(capsys, "bench", "generate", "--tokens", "8", "--rounds", "1", "--device", "cpu", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["tokens_per_s"] > 0 and set(result["peer_tokens_per_s"]) == {"dynamic", "static"}
    assert result["peer_ratio"] == pytest.approx(result["tokens_per_s"] / max(result["peer_tokens_per_s"].values()),
                                                 rel=0.01)


def test_bench_precision_compares_bf16_with_fp32_action_tokens(capsys, tmp_path):
    from gato.commands.data import collect

    collect(("control/cartpole", "mujoco/reacher"), episodes=2, test_episodes=1, out=tmp_path, progress=False)
    code, out, _ = run(capsys, "bench", "precision", "--data", str(tmp_path), "--batches", "1", "--batch-size", "2",
                       "--device", "cpu", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["action_targets"]["discrete"] > 0 and result["action_targets"]["continuous"] > 0
    assert 0.5 <= result["agreement"]["discrete"] <= 1 and 0.5 <= result["agreement"]["continuous"] <= 1
    assert result["continuous_mean_bin_distance"] >= 0 and result["bf16_speedup"] > 0


def test_bench_device_errors_name_the_option(capsys):
    code, _, err = run(capsys, "bench", "eval", "--device", "tpu", "--json")
    assert code == 2 and "'tpu'" in err and "auto, cpu or cuda" in err
    if not torch.cuda.is_available():
        code, _, err = run(capsys, "bench", "generate", "--device", "cuda", "--json")
        assert code == 2 and "no CUDA device" in err


def test_tokenizer_train_cli(capsys, tmp_path):
    corpus = tmp_path / "corpus.txt"
    from gato.tokenization.text import build_default_corpus

    corpus.write_text("\n".join(build_default_corpus()[:100]))
    code, _, _ = run(capsys, "tokenizer", "train", "--out", str(tmp_path / "t.model"), "--vocab-size", "600",
                     "--input", str(corpus))
    assert code == 0 and (tmp_path / "t.model").stat().st_size > 0
    code, _, err = run(capsys, "tokenizer", "train", "--out", str(tmp_path / "u.model"), "--input",
                       str(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt" in err


def test_demo_pipeline_resumes_and_reuses_finished_stages(capsys, tmp_path):
    from gato.commands.demo import demo

    small = dict(out=tmp_path, tasks=("control/cartpole", "control/mountaincar"), episodes=2, steps=6,
                 batch_size=2, context=64, eval_episodes=1, vl_limit=12, vl_examples=2, workers=1, videos=0)
    early = demo(**small, train_minutes=0)  # out of training time: it still ends with a report
    assert "Run the demo again" in capsys.readouterr().out
    assert early["checkpoint"].endswith("step_00000001")
    results = demo(**small)
    out = capsys.readouterr().out
    assert "resuming at step 1" in out and (tmp_path / "eval" / "report.md").exists()
    assert results["checkpoint"].endswith("step_00000006")
    assert set(results["tasks"]) == {"control/cartpole", "control/mountaincar"}
    assert {"text/corpus", "vl/scenes-vqa"} <= set(results["vision_language"])
    assert "above 50%" in out and "VQA" in out
    demo(**small)  # everything finished: nothing is redone
    assert "evaluate: already done" in capsys.readouterr().out


def test_tasks_lists_domains_with_scores(capsys):
    code, out, _ = run(capsys, "tasks", "--domain", "control")
    assert code == 0
    assert "control/cartpole" in out and "5 tasks: control 5" in out
    row = next(line for line in out.splitlines() if line.startswith("control/cartpole"))
    assert "500.0" in row  # the expert's reference score from gato/envs/scores.json


def test_scores_writes_expert_and_random(capsys, tmp_path):
    out = tmp_path / "scores.json"
    code, _, _ = run(capsys, "scores", "--tasks", "control/mountaincar", "--episodes", "2", "--out", str(out))
    assert code == 0
    entry = json.loads(out.read_text())["tasks"]["control/mountaincar"]
    assert entry["expert"]["episodes"] == 2 and entry["random"]["mean"] == -200.0
    assert entry["expert"]["mean"] > entry["random"]["mean"]
    assert entry["observation"] == "continuous 2" and entry["action"] == "discrete 1"
