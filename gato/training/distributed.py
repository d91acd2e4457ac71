"""Process groups for `torchrun ... -m gato train`: DDP or FSDP2 (fully_shard) from torch, nothing
home-made.

- One process per accelerator (or CPU process with gloo); torchrun sets RANK, WORLD_SIZE,
  LOCAL_RANK and the rendezvous. Without those variables nothing here starts a process group.
- The process group has a timeout, so a rank that died or never arrived makes the others fail
  with an error instead of hanging; torchrun then names the rank that stopped first.
- Before training every rank shows the others its config and dataset fingerprint
  (`check_same`); any difference is an error on every rank, naming the rank and the keys.
- Checkpoints hold FULL (unsharded) model and optimizer state, gathered to rank 0 with
  torch.distributed.checkpoint.state_dict, so a run resumes on any number of ranks.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

LARGE_PRESETS = ("gato-364m", "gato-1.18b")  # FSDP and activation checkpointing by default
_SAVE = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank `rank` of `world` (one process: 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int, grad_accum: int = 1) -> list[range]:
        """This rank's rows of the global batch, [rank*B/W, (rank+1)*B/W), split into micro-batches."""
        parts = self.world * grad_accum
        if batch_size % parts:
            raise ValueError(f"batch_size {batch_size} must be a multiple of world size x grad_accum "
                             f"= {self.world} x {grad_accum} = {parts}")
        per = batch_size // parts
        first = self.rank * batch_size // self.world
        return [range(first + i * per, first + (i + 1) * per) for i in range(grad_accum)]


def init(device: str, timeout_s: float = 600.0) -> Dist:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), or stay alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s),
                                device_id=torch.device("cuda", local) if device == "cuda" else None)
    return Dist(rank, world, local)


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def check_same(d: Dist, facts: dict[str, Any]) -> None:
    """Raise the same ValueError on every rank if any rank's `facts` differ from rank 0's."""
    if d.world == 1:
        return
    got: list[Any] = [None] * d.world
    dist.all_gather_object(got, facts)
    bad = [f"rank {r} has {key}={b!r}, rank 0 has {a!r}"
           for r, other in enumerate(got[1:], start=1) for key, a, b in _differences(got[0], other)]
    if bad:
        raise ValueError("ranks disagree before training (same command, data and gato on every node?): "
                         + "; ".join(bad))


def _differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(key, a's value, b's value) where they differ; dict values are compared one level deeper."""
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [(f"{k}.{j}", x.get(j), y.get(j)) for j in sorted(set(x) | set(y)) if x.get(j) != y.get(j)]
        elif x != y:
            out.append((k, x, y))
    return out


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world > 1:
        dist.all_reduce(t)
    return t


def is_peer_failure(e: BaseException, d: Dist) -> bool:
    """Whether a collective failed because another rank died or timed out (NCCL and gloo errors)."""
    return d.world > 1 and (isinstance(e, dist.DistError) or "gloo" in str(e))


def on_main(d: Dist, fn: Callable[[], Any]) -> Any:
    """fn() on rank 0 (None elsewhere); if it raises, every rank raises (no rank left waiting)."""
    result, error = None, None
    if d.main:
        try:
            result = fn()
        except Exception as e:  # handed to every rank below
            error = e
    failure = broadcast(d, None if error is None else f"{type(error).__name__}: {error}")
    if failure is not None and error is None:
        raise ValueError(f"rank 0 failed: {failure}")
    if error is not None:
        raise error
    return result


def broadcast(d: Dist, obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a small picklable object)."""
    if d.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def resolve_parallel(parallel: str, preset: str, d: Dist) -> str:
    """'none' on one process; else the configured mode, 'auto' meaning FSDP for the large presets."""
    if parallel not in ("auto", "ddp", "fsdp"):
        raise ValueError(f"parallel must be auto, ddp or fsdp, got {parallel!r}")
    if d.world == 1:
        return "none"
    if parallel == "auto":
        return "fsdp" if preset in LARGE_PRESETS else "ddp"
    return parallel


def wrap(model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """The module to call in training: `model` itself (none, fsdp: sharded in place) or a DDP wrapper.

    FSDP2 shards every transformer block, then the rest (embeddings, patch network, final norm);
    on CUDA parameters are gathered in bf16 and gradients reduced in fp32."""
    if mode == "none":
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    import warnings

    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # A block also returns its keys and values (views); training never modifies them in place.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if device.type == "cuda" else MixedPrecisionPolicy()
    for block in model.blocks:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


@contextlib.contextmanager
def grad_sync(engine: nn.Module, enabled: bool):
    """Reduce gradients across ranks in this backward only if `enabled` (the last micro-batch)."""
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(engine, DistributedDataParallel) and not enabled:
        with engine.no_sync():
            yield
        return
    if isinstance(engine, FSDPModule):
        engine.set_requires_gradient_sync(enabled)
    yield


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Unsharded model and optimizer state (parameter names as keys) on rank 0's CPU; {} elsewhere.

    Every rank must call it (FSDP gathers the shards)."""
    return (get_model_state_dict(model, options=_SAVE),
            get_optimizer_state_dict(model, optimizer, options=_SAVE))


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict, optim: dict,
                    d: Dist) -> None:
    """Inverse of `full_state`: rank 0 passes the full state, the others {}; it is broadcast and
    sharded as this run's world size needs (any number of ranks)."""
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=d.world > 1)
    # both calls replace the dicts' tensors in place: hand them copies
    set_model_state_dict(model, dict(weights), options=opts)
    set_optimizer_state_dict(model, optimizer, _copy(optim), options=opts)


def _copy(x):
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy(v) for v in x]
    return x


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in the backward pass instead of keeping them."""
    from functools import partial

    from torch.utils.checkpoint import checkpoint

    for block in model.blocks:
        block.forward = partial(checkpoint, block.forward, use_reentrant=False)
