"""Masked next-token cross-entropy: only text and action tokens are targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gato.tokenization.vocab import LOSS_GROUPS


def target_mask(loss_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: positions whose *next* token is a target (logits there are needed)."""
    m = torch.zeros_like(loss_mask)
    m[:, :-1] = loss_mask[:, 1:]
    return m


def masked_loss(logits: torch.Tensor, ids: torch.Tensor, kinds: torch.Tensor,
                loss_mask: torch.Tensor, total: torch.Tensor | float | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`logits` (N, V) at the positions of target_mask(loss_mask), in row-major order.

    Returns the loss summed over targets and divided by `total` (default: this batch's target
    count, i.e. the mean; a step split over micro-batches and ranks passes its global count so the
    parts' gradients add up to the whole batch's) and, per group (text, discrete_action,
    continuous_action), the (sum, count) tensors, to be reduced when logged."""
    targets = loss_mask.clone()
    targets[:, 0] = False  # the first position has no context
    tgt_ids, tgt_kinds = ids[targets], kinds[targets]
    ce = F.cross_entropy(logits.float(), tgt_ids, reduction="none")
    groups = {}
    for name, ks in LOSS_GROUPS.items():
        m = torch.isin(tgt_kinds, torch.tensor([int(k) for k in ks], device=kinds.device, dtype=kinds.dtype))
        groups[name] = torch.stack([(ce * m).sum(), m.sum().to(ce.dtype)])
    loss = ce.sum() / (ce.numel() if total is None else total) if ce.numel() else logits.sum() * 0.0
    return loss, groups
