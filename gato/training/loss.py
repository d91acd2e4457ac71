"""Masked next-token cross-entropy: only text and action tokens are targets.

Continuous action targets may be a Gaussian histogram over the ordered bins (HL-Gauss,
Farebrother et al. 2024, "Stop Regressing"): the one-hot target on bin k becomes a normal
density of `sigma` bins around k, restricted to the 1024 continuous bins and renormalised.
Cross-entropy on a one-hot bin treats bin 511 as far from 512 as from 0; the spread tells the
model that neighbours are nearly right, which learns continuous values from fewer tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gato.tokenization.vocab import LOSS_GROUPS, Kind


def target_mask(loss_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: positions whose *next* token is a target (logits there are needed)."""
    m = torch.zeros_like(loss_mask)
    m[:, :-1] = loss_mask[:, 1:]
    return m


def loss_units(loss_mask: torch.Tensor, per_row: bool = False) -> int:
    """What the loss is a mean over: target tokens, or (`per_row`) rows holding a target."""
    counts = loss_mask[:, 1:].sum(1)
    return int((counts > 0).sum()) if per_row else int(counts.sum())


def masked_loss(logits: torch.Tensor, ids: torch.Tensor, kinds: torch.Tensor,
                loss_mask: torch.Tensor, total: torch.Tensor | float | None = None, *,
                sigma: float = 0.0, continuous: tuple[int, int] | None = None, per_row: bool = False
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`logits` (N, V) at the positions of target_mask(loss_mask), in row-major order.

    Returns the loss summed over targets and divided by `total` (default: this batch's
    `loss_units`, i.e. the mean; a step split over micro-batches and ranks passes its global count
    so the parts' gradients add up to the whole batch's) and, per group (text, discrete_action,
    continuous_action), the unweighted (sum, count) tensors, to be reduced when logged. With
    `per_row`, each target weighs 1 / its row's target count, so every row adds the same to the
    sum. With `sigma` > 0, continuous action targets are Gaussian histograms over the id range
    `continuous` [lo, hi)."""
    targets = loss_mask.clone()
    targets[:, 0] = False  # the first position has no context
    tgt_ids, tgt_kinds = ids[targets], kinds[targets]
    if sigma > 0:
        ce = _smoothed_ce(logits.float(), tgt_ids, tgt_kinds == int(Kind.CONTINUOUS_ACTION), sigma, continuous)
    else:
        ce = F.cross_entropy(logits.float(), tgt_ids, reduction="none")
    groups = {}
    for name, ks in LOSS_GROUPS.items():
        m = torch.isin(tgt_kinds, torch.tensor([int(k) for k in ks], device=kinds.device, dtype=kinds.dtype))
        groups[name] = torch.stack([(ce * m).sum(), m.sum().to(ce.dtype)])
    if not ce.numel():
        return logits.sum() * 0.0, groups
    weighted = ce
    if per_row:
        per = targets.sum(1, keepdim=True).clamp(min=1).to(ce.dtype).expand_as(targets)
        weighted = ce / per[targets]
    loss = weighted.sum() / (loss_units(loss_mask, per_row) if total is None else total)
    return loss, groups


def gaussian_targets(bins: torch.Tensor, num_bins: int, sigma: float) -> torch.Tensor:
    """(N, num_bins) target distributions: a normal density of `sigma` bins around each bin index."""
    grid = torch.arange(num_bins, device=bins.device, dtype=torch.float32)
    p = torch.exp(-0.5 * ((grid[None] - bins[:, None].float()) / sigma) ** 2)
    return p / p.sum(-1, keepdim=True)


def _smoothed_ce(logits: torch.Tensor, ids: torch.Tensor, smooth: torch.Tensor, sigma: float,
                 continuous: tuple[int, int] | None) -> torch.Tensor:
    """Per-target cross-entropy: one-hot where `smooth` is False, a Gaussian histogram where True.

    One log-softmax over all targets serves both: the smoothed rows read their continuous bins
    from it rather than normalising their logits a second time (the loss is a fifth of a CPU
    training step at gato-tiny, docs/benchmarks.md)."""
    if continuous is None:
        raise ValueError("smoothed continuous targets need the token map's continuous id range")
    logp = torch.log_softmax(logits, -1)
    ce = -logp.gather(1, ids[:, None])[:, 0]
    if not bool(smooth.any()):
        return ce
    lo, hi = continuous
    soft = -(gaussian_targets(ids[smooth] - lo, hi - lo, sigma) * logp[smooth, lo:hi]).sum(-1)
    return ce.masked_scatter(smooth, soft)
