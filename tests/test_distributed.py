"""Training on several processes (gloo, 2 CPU processes) against one process with the same global
batch: same weights, resume on another number of ranks, ranks that disagree, a rank killed.

Tolerance: every weight within 1e-6 of the one-process run after 4 steps. The runs use Adam eps
1e-3 (the recipe below), which makes each update proportional to the gradient: the weights then
compare the gradients' arithmetic (the loss normalised over ranks and micro-batches), where a
wrong scale shows at once. With eps 1e-8 Adam is blind to a gradient's scale and amplifies float
rounding wherever a gradient is ~0 (gato-tiny's patch.conv1.bias, cancelled by a one-channel-per-
group GroupNorm, moves by up to the learning rate per step on rounding noise alone).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gato.training import checkpoint as ckpt
from gato.training.distributed import Dist
from gato.commands.train import train
from gato.training.config import TRAIN_PRESETS

# Registered at import, so the spawned ranks (which import this module) have it too.
TRAIN_PRESETS["test-linear-adam"] = dataclasses.replace(TRAIN_PRESETS["tiny"], eps=1e-3)
# fp32: ranks sum gradients in another order, which bf16 products would turn into 1e-3 differences
RUN = dict(recipe="test-linear-adam", preset="gato-tiny", steps=4, batch_size=4, context=64, lr=1e-3,
           warmup=1, log_every=1, checkpoint_every=2, device="cpu", progress=False, timeout_s=60, precision="fp32")
ATOL = 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, runs: list[dict]) -> None:
    """One rank of a torchrun-like launch: the environment torchrun sets, then train() per run."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1")
    for i, kw in enumerate(runs):
        os.environ["MASTER_PORT"] = str(port + i)
        train(**kw(rank) if callable(kw) else kw)


def launch(runs: list, world: int = 2, timeout_s: float = 300) -> None:
    """mp.spawn with a deadline: ranks still running after `timeout_s` are killed and the test fails
    (a hung collective must not hang the suite)."""
    ctx = mp.spawn(_rank, args=(world, free_port(), runs), nprocs=world, join=False)
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"ranks still running after {timeout_s:.0f} s: killed")


def run_to_end(cmd: list[str], env: dict, timeout_s: float = 240) -> tuple[int, str]:
    """Run `cmd` in its own process group and return (exit code, stdout + stderr); past the deadline
    the whole group is killed (torchrun's ranks too, which would otherwise keep the pipes open and
    hang the wait) and the test fails with what it printed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:4])} ... still running after {timeout_s:.0f} s: killed\n{out[-3000:]}")
    return proc.returncode, out


def assert_close_weights(a: Path, b: Path) -> None:
    wa, wb = ckpt.load_weights(a), ckpt.load_weights(b)
    assert wa.keys() == wb.keys()
    worst = max(((wa[k] - wb[k]).abs().max().item(), k) for k in wa)
    assert worst[0] <= ATOL, f"{worst[1]} differs by {worst[0]:.2e}"
    before = ckpt.load_weights(a.parent / MIDDLE)
    assert max((wa[k] - before[k]).abs().max().item() for k in wa) > 100 * ATOL  # the weights do move


def assert_close_state(a: Path, b: Path) -> None:
    sa, sb = ckpt.load_state(a), ckpt.load_state(b)
    assert sa["step"] == sb["step"] and sa["data"] == sb["data"]
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert json.dumps(oa["param_groups"]) == json.dumps(ob["param_groups"])  # (betas: tuple or list)
    for name, slots in oa["state"].items():
        for k, v in slots.items():
            assert torch.allclose(v, ob["state"][name][k], atol=ATOL, rtol=1e-4), (name, k)


LAST, MIDDLE = ckpt.checkpoint_name(RUN["steps"]), ckpt.checkpoint_name(2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-process reference, then one 2-process launch doing three runs: DDP from scratch, DDP
    resumed from the reference's step-2 checkpoint, and FSDP2 with activation checkpointing,
    2 micro-batches per rank and a data loader worker."""
    root = tmp_path_factory.mktemp("dist")
    train(root / "one", **RUN)
    shutil.copytree(root / "one" / MIDDLE, root / "one_then_two" / MIDDLE)
    launch([dict(RUN, out=root / "two"),
            dict(RUN, out=root / "one_then_two", resume=True),
            dict(RUN, out=root / "fsdp", parallel="fsdp", activation_checkpointing="on", grad_accum=2, loader_workers=1)])
    return root


def test_two_ranks_reach_the_weights_of_one(runs):
    assert ckpt.load_meta(runs / "two" / LAST)["world_size"] == 2
    assert ckpt.load_meta(runs / "two" / LAST)["parallel"] == "ddp"
    assert_close_weights(runs / "one" / LAST, runs / "two" / LAST)
    assert_close_state(runs / "one" / LAST, runs / "two" / LAST)


def test_fsdp_with_accumulation_and_checkpointing_reaches_the_same_weights(runs):
    assert ckpt.load_meta(runs / "fsdp" / LAST)["parallel"] == "fsdp"
    assert_close_weights(runs / "one" / LAST, runs / "fsdp" / LAST)
    assert_close_state(runs / "one" / LAST, runs / "fsdp" / LAST)


def test_one_rank_then_two(runs):
    assert_close_weights(runs / "one" / LAST, runs / "one_then_two" / LAST)
    assert_close_state(runs / "one" / LAST, runs / "one_then_two" / LAST)


def test_two_ranks_then_one(runs, tmp_path):
    shutil.copytree(runs / "two" / MIDDLE, tmp_path / MIDDLE)
    assert train(tmp_path, resume=True, **RUN)["step"] == RUN["steps"]
    assert_close_weights(runs / "one" / LAST, tmp_path / LAST)
    assert_close_state(runs / "one" / LAST, tmp_path / LAST)


def test_history_is_over_all_ranks(runs):
    """The logged loss is the global batch's mean on every world size."""
    one = json.loads((runs / "one" / "history.json").read_text())
    two = json.loads((runs / "two" / "history.json").read_text())
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) < 1e-4


def _other_lr_on_rank_1(out: Path, rank: int) -> dict:
    return dict(RUN, out=out, lr=1e-3 if rank == 0 else 5e-4)


def test_ranks_that_disagree_fail_at_start(tmp_path):
    message = r"ranks disagree.*rank 1 has train\.lr=0\.0005, rank 0 has 0\.001"
    with pytest.raises(mp.ProcessRaisedException, match=message):
        launch([partial(_other_lr_on_rank_1, tmp_path / "run")])
    assert ckpt.latest_checkpoint(tmp_path / "run") is None


KILL_SCRIPT = """
import dataclasses, os, signal, sys
from gato.cli import main
from gato.training.config import TRAIN_PRESETS
from gato.training.trainer import Trainer

TRAIN_PRESETS["test-linear-adam"] = dataclasses.replace(TRAIN_PRESETS["tiny"], eps=1e-3)
original = Trainer.train_step

def dies(self, batch):
    if self.step == 2 and self.dist.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, batch)

Trainer.train_step = dies
main(sys.argv[1:])
"""


def test_a_killed_rank_stops_the_run_and_it_resumes(runs, tmp_path):
    """torchrun (what users run): rank 1 is killed at step 3; the run fails naming it, and the
    step-2 checkpoint resumes (here on one process) to the reference weights."""
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    args = ["train", "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress", "--timeout-s", "60"]
    for k in ("recipe", "steps", "batch_size", "context", "lr", "warmup", "log_every", "checkpoint_every", "precision"):
        args += [f"--{k.replace('_', '-')}", str(RUN[k])]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    code, out = run_to_end([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                            "--master_port", str(free_port()), str(script), *args], env)
    assert code != 0
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s*exitcode\s*:\s*-9", out), out[-3000:]
    assert ckpt.latest_checkpoint(tmp_path / "run").name == MIDDLE
    assert train(tmp_path / "run", resume=True, **RUN)["step"] == RUN["steps"]
    assert_close_weights(runs / "one" / LAST, tmp_path / "run" / LAST)


def test_rows_of_a_rank():
    assert Dist(0, 2).rows(8) == [range(0, 4)] and Dist(1, 2).rows(8) == [range(4, 8)]
    assert Dist(1, 2).rows(8, grad_accum=2) == [range(4, 6), range(6, 8)]
    assert Dist(0, 1).rows(6, grad_accum=3) == [range(0, 2), range(2, 4), range(4, 6)]
    with pytest.raises(ValueError, match="multiple of world size x grad_accum = 2 x 2 = 4"):
        Dist(0, 2).rows(6, grad_accum=2)


@pytest.mark.parametrize("weighting", ["token", "row"])
def test_accumulation_and_loader_workers_change_nothing(tmp_path, weighting):
    """One process: 2 micro-batches per step and a worker process building batches give the
    weights of the plain run (the same rows, the same global normalisation, per target or per row)."""
    from gato.training.trainer import Trainer

    cfg = dataclasses.replace(TRAIN_PRESETS["test-linear-adam"], steps=2, batch_size=4, context=64, warmup=1,
                              precision="fp32",  # bf16 products would differ with the summation order
                              loss_weighting=weighting)
    plain = Trainer(cfg)
    plain.fit(progress=False)
    split = Trainer(dataclasses.replace(cfg, grad_accum=2, loader_workers=1))
    split.fit(progress=False)
    a, b = plain.model.state_dict(), split.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= ATOL
    assert split.data.state_dict() == plain.data.state_dict() == {"seed": cfg.seed, "step": 2}


def test_out_of_memory_names_the_remedies(monkeypatch):
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    trainer = Trainer(TrainConfig(batch_size=2, context=32))

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.model, "forward", oom)
    advice = r"gato-tiny with 2 rows x 32 tokens.*--grad-accum.*--activation-checkpointing on.*--parallel fsdp"
    with pytest.raises(MemoryError, match=advice):
        trainer.train_step(trainer.data.sample_batch(2, 32))


@pytest.mark.slow
def test_compiled_blocks_train_like_eager():
    """--compile: torch.compile on each block gives the eager weights (CPU inductor needs a C++ compiler)."""
    from gato.training.trainer import Trainer

    cfg = dataclasses.replace(TRAIN_PRESETS["test-linear-adam"], steps=2, batch_size=2, context=64, warmup=1)
    eager, compiled = Trainer(cfg), Trainer(dataclasses.replace(cfg, compile=True))
    eager.fit(progress=False)
    compiled.fit(progress=False)
    a, b = eager.model.state_dict(), compiled.model.state_dict()
    assert a.keys() == b.keys()  # compiling in place keeps the checkpoint's names
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
