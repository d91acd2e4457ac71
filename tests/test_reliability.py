"""Nothing lost, nothing silent: outputs are not overwritten, concurrent jobs are refused, bad
data and arguments fail early with a clear line."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gato.cli import COMMANDS, _load, main
from gato.commands.data import collect, scores
from gato.commands.generate import caption
from gato.commands.train import export, train
from gato.data.episode import TaskSpec
from gato.data.storage import DatasetWriter, TaskDataset
from gato.io import folder_lock, write_json
from gato.training.checkpoint import CheckpointError
from gato.training.loading import load_checkpoint

SMALL = dict(steps=2, batch_size=2, context=64, warmup=1, progress=False, checkpoint_every=2)
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"


def run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    collect(("control/pendulum",), episodes=2, test_episodes=1, out=data, progress=False)
    return data


def test_export_never_replaces_what_is_not_its_own(tmp_path, pendulum):
    train(out=tmp_path / "run", data=str(pendulum), **SMALL)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a checkpoint"):
        export(tmp_path / "run", out=mine)
    with pytest.raises(ValueError, match="exists and is not a checkpoint"):
        export(tmp_path / "run", out=tmp_path / "run")  # the run folder itself
    assert (mine / "notes.txt").read_text() == "keep me" and len(list((tmp_path / "run").glob("step_*"))) == 1
    export(tmp_path / "run", out=tmp_path / "shared")
    with pytest.raises(ValueError, match="--force"):
        export(tmp_path / "run", out=tmp_path / "shared")
    export(tmp_path / "run", out=tmp_path / "shared", force=True)
    with pytest.raises(ValueError, match="is a checkpoint being exported"):
        export(tmp_path / "shared", out=tmp_path / "shared", force=True)


def test_train_refuses_a_foreign_folder_and_a_second_job(tmp_path, pendulum):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"mine": 1}')
    (foreign / "report.md").write_text("x")
    with pytest.raises(ValueError, match="not a gato run"):
        train(out=foreign, data=str(pendulum), **SMALL)
    assert json.loads((foreign / "config.json").read_text()) == {"mine": 1}
    with folder_lock(tmp_path / "busy", "another gato train"):
        with pytest.raises(ValueError, match="in use by another job .another gato train"):
            train(out=tmp_path / "busy", data=str(pendulum), **SMALL)
    train(out=tmp_path / "busy", data=str(pendulum), **SMALL)  # free once the other job ends
    with pytest.raises(ValueError, match="does not exist"):  # a job that fails before writing leaves no folder
        train(out=tmp_path / "new" / "run", data=str(tmp_path / "nope"), **SMALL)
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="does not exist"):  # nor removes one it did not make
        train(out=tmp_path / "kept", data=str(tmp_path / "nope"), **SMALL)
    assert (tmp_path / "kept").is_dir()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = f"from gato.io import folder_lock\nimport time\nwith folder_lock({str(tmp_path)!r}, 'victim'):\n" \
           "    print('locked', flush=True)\n    time.sleep(60)\n"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    with pytest.raises(ValueError, match="victim"):
        with folder_lock(tmp_path, "me"):
            pass
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with folder_lock(tmp_path, "me"):  # the kernel dropped the dead process's lock
        pass


def test_resume_keeps_history_and_refuses_changed_data(tmp_path, pendulum):
    data = tmp_path / "data"
    shutil.copytree(pendulum, data)
    train(out=tmp_path / "run", data=str(data), **(SMALL | {"log_every": 1}))
    train(out=tmp_path / "run", data=str(data), resume=True, **(SMALL | {"steps": 4, "log_every": 1}))
    steps = [r["step"] for r in json.loads((tmp_path / "run" / "history.json").read_text())]
    assert steps == [1, 2, 3, 4]  # the first run's records are kept
    collect(("control/pendulum",), episodes=3, test_episodes=1, out=data, progress=False)  # one more episode
    with pytest.raises(ValueError, match="training data changed"):
        train(out=tmp_path / "run", data=str(data), resume=True, **(SMALL | {"steps": 6}))
    train(out=tmp_path / "run", data=str(data), resume=True, allow_data_change=True, **(SMALL | {"steps": 6}))


def test_a_non_finite_value_in_a_dataset_is_named_before_training(tmp_path, pendulum):
    ds = TaskDataset(pendulum, "control/pendulum")
    ep = ds.episodes("train")[0]
    ep.observations[7] = np.array([np.nan, 0.0, 0.0], np.float32)
    w = DatasetWriter(tmp_path, ds.spec, {}, split="train")
    w.add(ep, seed=0)
    w.close()
    with pytest.raises(ValueError, match="control/pendulum .*episode 0 has a non-finite observation at step 7"):
        train(out=tmp_path / "run", data=str(tmp_path), **SMALL)


@pytest.mark.parametrize("argv,message", [
    (["train", "--steps", "0"], "steps must be >= 1"),
    (["train", "--checkpoint-every", "0"], "checkpoint_every must be >= 1"),
    (["train", "--start-prob", "2"], "start_prob must be in"),
    (["train", "--lr", "-0.001"], "lr must be > 0, got -0.001"),
    (["train", "--warmup", "-5"], "warmup must be >= 0, got -5"),
    (["collect", "control/cartpole", "--episodes", "-1"], "episodes must be >= 0"),
    (["collect", "control/cartpole", "--workers", "0"], "workers and shard_episodes must be >= 1, got 0 and 16"),
    (["scores", "--tasks", "control/cartpole", "--workers", "-2", "--out", "s.json"], "episodes and workers must be >= 1"),
    (["inspect", "--count", "-5"], "start must be >= 0 and count >= 1, got 0 and -5"),
    (["chat", "nothing", "--prompt", "hi", "--max-tokens", "-4"], "--max-tokens must be >= 1, got -4"),
    (["tasks", "--domain", "typo"], "unknown domain 'typo'"),
    (["play", "nothing", "control/cartpole", "--max-frames", "0"], "max_frames must be >= 1, got 0"),
    (["play", "nothing", "control/cartpole", "--max-frames", "-3"], "max_frames must be >= 1, got -3"),
    (["train", "--context", "100000"], "context 100000 is above the gato-tiny model's context of 1024"),
    (["inspect", "--context", "100000"], "context must be in [1, 1024]"),
    (["eval", "nothing", "--device", "tpu"], "--device 'tpu': expected auto, cpu or cuda"),
    (["caption", "nothing", "x.png", "--size", "24"], "--size must be a multiple of 16"),
    (["vqa", "nothing", "x.png", "what?", "--size", "0"], "--size must be a multiple of 16"),
])
def test_bad_arguments_are_one_clear_line(capsys, tmp_path, argv, message):
    code, err = run_cli(capsys, *argv, *(["--out", str(tmp_path / "o")] if argv[0] in ("train", "collect") else []))
    assert code == 2 and message in err and "Traceback" not in err


def test_eval_rejects_zero_episodes_before_loading(capsys, tmp_path):
    code, err = run_cli(capsys, "eval", str(tmp_path / "nothing"), "--episodes", "0")
    assert code == 2 and "episodes and workers must be >= 1" in err


def test_a_checkpoint_file_for_its_folder_names_the_folder(capsys, tmp_path):
    code, err = run_cli(capsys, "eval", str(SHIPPED / "model.safetensors"), "--out", str(tmp_path / "e"))
    assert code == 2 and f"model.safetensors is a file: give the checkpoint folder that holds it ({SHIPPED})" in err
    assert not (tmp_path / "e").exists()


def test_an_os_error_is_one_line_and_version_prints(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    code, err = run_cli(capsys, "collect", "control/cartpole", "--episodes", "1", "--out", str(target / "sub"))
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    main(["--version"])
    assert capsys.readouterr().out.startswith("gato ")


def test_json_is_written_strictly(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        write_json(tmp_path / "r.json", {"score": float("nan")})
    assert not (tmp_path / "r.json").exists()


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_killing_collect_leaves_no_worker_behind(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "gato", "collect", "control/cartpole", "--episodes", "400",
                          "--workers", "2", "--no-progress", "--out", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(workers := _children(p.pid)) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.2)
    assert len(workers) == 2, p.stderr.read().decode() if p.poll() is not None else "no workers started"
    time.sleep(1)  # the workers are recording episodes
    p.kill()
    try:
        p.communicate(timeout=20)  # end of output: no orphan holds the pipes open
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers))
        with folder_lock(tmp_path, "me"):  # no orphan holds the collection's lock either
            pass
    finally:
        for w in filter(_alive, workers):  # a failed run leaves none behind either
            os.kill(w, signal.SIGKILL)


@pytest.fixture
def shipped_copy(tmp_path):
    """The shipped checkpoint's weights, config and tokenizer, in a folder a test may change."""
    (tmp_path / "ck").mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.model"):
        shutil.copy(SHIPPED / name, tmp_path / "ck" / name)
    return tmp_path / "ck"


def _set_model_field(checkpoint: Path, field: str, value) -> None:
    config = checkpoint / "config.json"
    doc = json.loads(config.read_text())
    doc["model"][field] = value
    config.write_text(json.dumps(doc))


# sizes no machine holds: refused from the weights file's header, before any allocation is tried
@pytest.mark.parametrize("field,value,message", [
    ("text_vocab", 10**12, "describes a model of .* parameters but .*model.safetensors holds [1-9][0-9]{0,2}(,[0-9]{3})+ values"),
    ("width", 10**10, "describes a model of .* parameters but .*model.safetensors holds [1-9][0-9]{0,2}(,[0-9]{3})+ values"),
    ("num_layers", 10**9, "num_layers 1000000000 is more than the .* tensors .*model.safetensors holds"),
    ("context", 10**9, r"not a valid model config \(context must be in \[1, 65536\], got 1000000000\)"),
])
def test_a_crafted_config_is_refused_before_the_model_is_allocated(shipped_copy, field, value, message):
    _set_model_field(shipped_copy, field, value)
    with pytest.raises(CheckpointError, match=f"{shipped_copy / 'config.json'}.*{message}"):
        load_checkpoint(shipped_copy)


def test_a_tokenizer_larger_than_the_models_text_ids_is_refused(shipped_copy):
    _set_model_field(shipped_copy, "text_vocab", 1000)
    with pytest.raises(ValueError, match="tokenizer .* has 4096 ids but the model's text_vocab in config.json is 1000"):
        load_checkpoint(shipped_copy)


def test_eval_shows_progress_per_task_and_vision_language_set(capsys, tmp_path):
    from gato.commands.evaluate import evaluate

    collect(("vl/digits",), out=tmp_path / "data", vl_limit=40, progress=False)
    evaluate(SHIPPED, tasks=("control/cartpole",), episodes=2, envs=2, videos=0, data=tmp_path / "data",
             vl_examples=3, prompt=False, out=tmp_path / "eval")
    err = capsys.readouterr().err
    assert re.search(r"control/cartpole: .*\d/2 \[.*episode/s\]", err)  # a bar with a time estimate
    assert re.search(r"vl/digits: .*\d/3 \[.*example/s\]", err)
    evaluate(SHIPPED, tasks=("control/cartpole",), episodes=1, envs=1, videos=0, vl=False, prompt=False,
             out=tmp_path / "quiet", progress=False)
    assert "episode/s" not in capsys.readouterr().err


def test_every_command_takes_the_same_device_convention():
    from gato.device import resolve_device

    defaults = {" ".join(k): p.default for k, (target, _) in COMMANDS.items()
                if (p := inspect.signature(_load(target)).parameters.get("device")) is not None}
    assert {"eval", "play", "chat", "caption", "vqa", "dagger", "finetune", "train", "bench act"} <= defaults.keys()
    assert set(defaults.values()) == {"auto"}, defaults
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cpu:0", "cuda:x"):
        with pytest.raises(ValueError, match=f"--device {bad!r}: expected auto, cpu or cuda"):
            resolve_device(bad)


def test_every_command_names_tasks_and_workers_the_same_way(capsys, tmp_path):
    params = {" ".join(k): inspect.signature(_load(target)).parameters for k, (target, _) in COMMANDS.items()}
    several = {k for k, p in params.items() if "tasks" in p}
    assert {"collect", "eval", "train", "dagger", "scores", "data-report", "experiment prompts"} <= several
    # --workers is always processes that share the command's work; train's batch builders are --loader-workers
    assert {k for k, p in params.items() if "workers" in p} == {"collect", "scores", "eval", "demo", "experts train-ars"}
    assert "loader_workers" in params["train"] and "loader_workers" in params["bench train"]
    code, _ = run_cli(capsys, "collect", "--tasks", "control/cartpole", "--episodes", "1", "--test-episodes", "0",
                      "--no-progress", "--out", str(tmp_path))
    assert code == 0 and TaskDataset(tmp_path, "control/cartpole").episodes("train")


def test_caption_sizes_fit_the_training_images_and_the_context(capsys, tmp_path):
    from PIL import Image

    from gato.commands.generate import _images

    for px in (32, 200):
        Image.new("RGB", (px, px), "white").save(tmp_path / f"{px}.png")
    digit, photo = _images([tmp_path / "32.png", tmp_path / "200.png"], None)
    assert digit.shape == (32, 32, 3) and photo.shape == (64, 64, 3)  # as the digits and imported sets trained
    with pytest.raises(ValueError, match="--size 4096 is 65536 patches.* more than the model's context of 512"):
        caption(SHIPPED, (tmp_path / "32.png",), size=4096, device="cpu")
    assert caption(SHIPPED, (tmp_path / "32.png",), max_tokens=4, device="cpu")


def test_scores_never_replace_a_file_unless_forced(capsys, tmp_path, monkeypatch):
    from gato.envs.scores import DEFAULT_FILE

    shipped = DEFAULT_FILE.read_bytes()
    # were the shipped file the default again, the run below would write to this copy, not the package
    monkeypatch.setattr("gato.commands.data.DEFAULT_FILE", tmp_path / "guard.json", raising=False)
    code, err = run_cli(capsys, "scores", "--tasks", "control/cartpole", "--episodes", "1")
    assert code == 2 and "--out" in err and DEFAULT_FILE.read_bytes() == shipped
    out = tmp_path / "scores.json"
    write_json(out, {"version": 1, "tasks": {"x/kept": {"expert": {"mean": 1.0}}}})
    with pytest.raises(ValueError, match=f"--out {out} exists; pass --force"):
        scores(("control/cartpole",), episodes=1, out=out)
    scores(("control/cartpole",), episodes=1, out=out, force=True)
    assert set(json.loads(out.read_text())["tasks"]) == {"x/kept", "control/cartpole"}


def test_an_integer_box_action_space_wider_than_the_token_map_is_refused():
    from gymnasium import spaces

    from gato.agent import check_action_space
    from gato.config import get_preset

    tm = get_preset("gato-tiny").token_map
    obs = spaces.Box(-1, 1, (2,), np.float32)
    assert len(check_action_space(TaskSpec("test/fits", obs, spaces.Box(0, 1023, (2,), np.int64)), tm)) == 2
    for wide in (spaces.Box(0, 1024, (2,), np.int64), spaces.Box(-2**62, 2**62, (1,), np.int64)):
        with pytest.raises(ValueError, match="test/wide: action space .* more than the token map's 1024"):
            check_action_space(TaskSpec("test/wide", obs, wide), tm)
