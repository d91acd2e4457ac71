"""A deeper model that starts as a trained shallower one (block expansion, LLaMA Pro, Wu et al. 2024).

At gato-tiny's size a training round trades tasks: what it learns on the tasks it rolls out it
unlearns on others (docs/quality.md, rounds 11 to 13). More blocks add capacity, but a larger
model trained from scratch would need the CPU-hours the shipped one already spent. Instead each
new block is a copy of the block before it with its two output projections zeroed: in a pre-norm
residual stream such a block adds nothing, so the grown model computes exactly what the trained
one did, and training goes on from there.
"""

from __future__ import annotations

import re

import torch

# The projections that write a block's attention and MLP outputs into the residual stream.
_OUTPUTS = ("attn.proj.weight", "mlp.proj.weight", "mlp.proj.bias")
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


def expansion(have: int, want: int) -> list[int]:
    """For each of WANT blocks, the trained block it starts from: the copies are spread evenly, each
    right after the block it copies (4 -> 6: 0, 1, 1, 2, 3, 3)."""
    if not 1 <= have <= want:
        raise ValueError(f"can only grow a model of 1 or more blocks to as many or more, not {have} to {want}")
    extra = want - have
    order = []
    for i in range(have):
        order += [i] * (1 + (i + 1) * extra // have - i * extra // have)
    return order


def grow_depth(weights: dict[str, torch.Tensor], have: int, want: int) -> dict[str, torch.Tensor]:
    """WEIGHTS of a model with HAVE blocks as those of one with WANT: every other tensor as it is,
    each block's from `expansion`, and each copy's output projections zero."""
    order = expansion(have, want)
    grown = {k: v for k, v in weights.items() if not _BLOCK.fullmatch(k)}
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in weights.items():
        if m := _BLOCK.fullmatch(k):
            blocks.setdefault(int(m[1]), {})[m[2]] = v
    if sorted(blocks) != list(range(have)):
        raise ValueError(f"the weights hold blocks {sorted(blocks)}, not 0..{have - 1}")
    for new, old in enumerate(order):
        copy = new > 0 and order[new - 1] == old
        for name, v in blocks[old].items():
            grown[f"blocks.{new}.{name}"] = torch.zeros_like(v) if copy and name in _OUTPUTS else v.clone()
    return grown
