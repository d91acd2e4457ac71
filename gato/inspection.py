"""A sequence as a table, so anyone can see what the model sees (`gato inspect` prints one)."""

from __future__ import annotations

import numpy as np

from gato.data.layout import Sequence
from gato.tokenization import continuous
from gato.tokenization.vocab import Kind, TokenMap


def describe_position(seq: Sequence, i: int, tm: TokenMap, text=None) -> str:
    """The decoded value at position i: a text piece, a bin and its value, a discrete value, a patch."""
    kind, tid = Kind(int(seq.kinds[i])), int(seq.ids[i])
    if kind == Kind.IMAGE:
        r0, r1, c0, c1 = (int(v) for v in seq.patch_pos[tid])
        return f"patch {tid} rows[{r0},{r1}) cols[{c0},{c1}) mean {float(seq.patches[tid].mean()):+.3f}"
    lo, hi = tm.continuous_range()
    if lo <= tid < hi:
        y = float(continuous.from_bins(np.array([tid - lo]), tm.num_bins)[0])
        return f"bin {tid - lo} (y={y:+.4f}, mu-law^-1={float(continuous.inverse_mu_law(y)):+.4g})"
    if tm.discrete_start <= tid < tm.separator:
        return f"value {tid - tm.discrete_start}"
    if tid < tm.text_vocab and text is not None:
        return repr(text.decode([tid]))
    return tm.describe(tid)


def format_sequence(seq: Sequence, tm: TokenMap, text=None, start: int = 0, count: int | None = None) -> str:
    stop = len(seq) if count is None else min(len(seq), start + count)
    rows = [f"{'pos':>5}  {'kind':<17} {'id':>6}  {'local':>5}  {'loss':>4}  value"]
    for i in range(start, stop):
        kind = Kind(int(seq.kinds[i]))
        tid = "-" if kind == Kind.IMAGE else str(int(seq.ids[i]))
        local = int(seq.local_pos[i])
        rows.append(f"{i:>5}  {kind.name:<17} {tid:>6}  {local if local >= 0 else '-':>5}  "
                    f"{int(seq.loss_mask[i]):>4}  {describe_position(seq, i, tm, text)}")
    return "\n".join(rows)
