"""Tests for gato.model: preset sizes, KV cache exactness, positions, causality, clear errors.

All on CPU with a 1-2 layer model of width 64; the whole file runs in a few seconds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gato.config import PRESETS, ModelConfig, get_preset
from gato.model import Gato, KVCache
from gato.tokenization.images import PATCH, patch_positions
from gato.tokenization.vocab import Kind

from conftest import SMALL as SHARED_SMALL, small_model

# The shared small model with a smaller text vocabulary, feed-forward and local positions: the
# model these tests, and the tolerances below, were written for.
SMALL = dataclasses.replace(SHARED_SMALL, text_vocab=256, ff_size=256, max_local_positions=32)
STATE_TOL = 1e-5  # chunked / cached vs full forward: same math, different summation order
FAR_TOL = 1e-5  # the same tokens at rotary positions ~1e5 vs 0 (measured ~3e-7: angles are float64)


# ---------------------------------------------------------------------------------- helpers
def make_batch(cfg: ModelConfig = SMALL, B: int = 2, steps: int = 4, seed: int = 0) -> dict:
    """Agent timesteps [4 image patches, 2 discrete obs, '|', 1 discrete action, 2 continuous actions]
    after a BOS, then a few text tokens; random ids from the right ranges, local positions set."""
    g = torch.Generator().manual_seed(seed)
    tm = cfg.token_map
    kinds, local = [Kind.BOS], [-1]
    for _ in range(steps):
        obs = [Kind.IMAGE] * 4 + [Kind.DISCRETE_OBS] * 2
        kinds += obs + [Kind.SEPARATOR, Kind.DISCRETE_ACTION, Kind.CONTINUOUS_ACTION, Kind.CONTINUOUS_ACTION]
        local += list(range(len(obs))) + [-1] * 4
    kinds += [Kind.TEXT] * 5
    local += [-1] * 5
    T = len(kinds)
    kinds = torch.tensor(kinds, dtype=torch.uint8).expand(B, T).clone()
    local = torch.tensor(local).expand(B, T).clone()

    def rand(lo_hi):
        return torch.randint(lo_hi[0], lo_hi[1], (B, T), generator=g)

    ids = torch.full((B, T), tm.pad)
    ids = torch.where(kinds == Kind.BOS, tm.bos, ids)
    ids = torch.where(kinds == Kind.SEPARATOR, tm.separator, ids)
    for k, r in ((Kind.DISCRETE_OBS, tm.discrete_range()), (Kind.DISCRETE_ACTION, tm.discrete_range()),
                 (Kind.CONTINUOUS_ACTION, tm.continuous_range()), (Kind.TEXT, tm.text_range())):
        ids = torch.where(kinds == k, rand(r), ids)
    n = int((kinds == Kind.IMAGE).sum())
    patches = (torch.rand(n, PATCH, PATCH, 3, generator=g) * 2 - 1) / 4
    pos = torch.from_numpy(patch_positions(2, 2))  # each image: 2x2 patches, in raster order
    patch_pos = pos.repeat(n // 4, 1)
    return dict(ids=ids, kinds=kinds, local_pos=local, patches=patches, patch_pos=patch_pos)


def chunk(batch: dict, s: int, e: int) -> dict:
    """Positions [s, e) of every row, with the patches those positions use (row-major order)."""
    is_img = batch["kinds"] == Kind.IMAGE
    slot = (is_img.flatten().cumsum(0) - 1).view(is_img.shape)
    take = slot[:, s:e][is_img[:, s:e]]
    return dict(ids=batch["ids"][:, s:e], kinds=batch["kinds"][:, s:e], local_pos=batch["local_pos"][:, s:e],
                patches=batch["patches"][take], patch_pos=batch["patch_pos"][take])


def empty_cache(model: Gato, B: int, next_pos: int) -> KVCache:
    """A cache with no slots whose next rotary position is `next_pos` (as after a long rollout)."""
    c = model.cfg
    z = torch.zeros(B, c.num_heads, 0, c.head_dim)
    return KVCache([z] * c.num_layers, [z] * c.num_layers, torch.zeros(B, 0, dtype=torch.bool),
                   torch.full((B,), next_pos, dtype=torch.long))


def close(a, b, atol):
    err = (a - b).abs().max().item()
    assert err <= atol, f"max abs difference {err:.3g} > {atol:g}"


# ------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("name,paper", [("gato-79m", 79e6), ("gato-364m", 364e6), ("gato-1.18b", 1.18e9)])
def test_preset_parameter_counts_match_the_paper(name, paper):
    with torch.device("meta"):
        n = Gato(get_preset(name)).num_params()
    assert abs(n - paper) / paper < 0.05, f"{name}: {n / 1e6:.1f}M parameters, paper {paper / 1e6:.0f}M"


def test_tiny_preset_is_small():
    with torch.device("meta"):
        n = Gato(get_preset("gato-tiny")).num_params()
    assert 1e6 < n < 10e6


def test_presets_follow_table_5():
    for name, (layers, width, heads, kv) in {"gato-79m": (8, 768, 24, 32), "gato-364m": (12, 1536, 12, 128),
                                            "gato-1.18b": (24, 2048, 16, 128)}.items():
        c = PRESETS[name]
        assert (c.num_layers, c.width, c.num_heads, c.head_dim, c.context) == (layers, width, heads, kv, 1024)
        assert c.vocab_size == 32000 + 1024 + 1024 + 3  # text, bins, discrete, separator/pad/bos


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        get_preset("nope")
    for name in PRESETS:
        assert name in str(e.value)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="patch_channels"):
        dataclasses.replace(SMALL, patch_channels=40)
    with pytest.raises(ValueError, match="head_dim"):
        dataclasses.replace(SMALL, head_dim=31)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**SMALL.to_dict(), "bogus": 1})
    assert ModelConfig.from_dict(SMALL.to_dict()) == SMALL


# ------------------------------------------------------------------------------ shapes
def test_forward_shapes_and_logits_at():
    m, b = small_model(SMALL), make_batch()
    B, T = b["ids"].shape
    full, cache = m(**b)
    assert full.shape == (B, T, SMALL.vocab_size) and cache is None
    sel = torch.rand(B, T, generator=torch.Generator().manual_seed(1)) < 0.3
    sel[0, 0] = sel[1, -1] = True
    part, _ = m(**b, logits_at=sel)
    assert part.shape == (int(sel.sum()), SMALL.vocab_size)
    close(part, full[sel], STATE_TOL)


# ------------------------------------------------------------------------------ KV cache
@pytest.mark.parametrize("bounds", [(0, 20, 37), (0, 1, 2, 3, 11, 12)], ids=["3-chunks", "uneven"])
def test_chunked_forward_with_cache_equals_full_forward(bounds):
    m, b = small_model(SMALL), make_batch()
    T = b["ids"].shape[1]
    full, _ = m(**b)
    edges = [*bounds, T]
    outs, cache = [], None
    with torch.no_grad():
        for s, e in zip(edges[:-1], edges[1:]):
            out, cache = m(**chunk(b, s, e), cache=cache, use_cache=True)
            outs.append(out)
    assert cache.length == T and cache.valid.all() and cache.next_pos.tolist() == [T, T]
    close(torch.cat(outs, dim=1), full, STATE_TOL)


def test_token_by_token_decoding_equals_full_forward():
    m, b = small_model(SMALL), make_batch(steps=2)
    T = b["ids"].shape[1]
    full, _ = m(**b)
    out, cache = m(**chunk(b, 0, 1), use_cache=True)
    outs = [out]
    for t in range(1, T):
        out, cache = m(**chunk(b, t, t + 1), cache=cache)
        outs.append(out)
    close(torch.cat(outs, dim=1), full, STATE_TOL)


@pytest.mark.parametrize("masked", [False, True])
def test_one_token_step_equals_the_general_forward(masked):
    """`Gato.step` (the acting and generating loop's purpose-written step) gives the logits, cache
    slots and positions of `forward` on the same token, with every slot real or some masked (a
    row reset mid-rollout), past the cache's capacity too."""
    m, b = small_model(SMALL), make_batch(steps=2)
    with torch.no_grad():
        _, ref = m(**b, use_cache=True)
        _, fast = m(**b, use_cache=True)
        if masked:
            for c in (ref, fast):
                c.valid[1, 3:9] = False
        g = torch.Generator().manual_seed(1)
        for _ in range(ref.capacity - ref.length + 2):  # fills the buffers, then grows them
            tok = torch.randint(*SMALL.token_map.continuous_range(), (2,), generator=g)
            want, ref = m(tok[:, None], torch.full((2, 1), int(Kind.CONTINUOUS_ACTION)), torch.full((2, 1), -1),
                          cache=ref, logits_at=torch.zeros(2, dtype=torch.long), vocab=(10, 300))
            got, fast = m.step(tok, fast, vocab=(10, 300))
            assert torch.equal(got, want)
    assert fast.length == ref.length and torch.equal(fast.next_pos, ref.next_pos)
    assert torch.equal(fast.valid, ref.valid) and torch.equal(fast.keys[-1], ref.keys[-1])


def test_one_token_step_leaves_onednn_as_it_found_it():
    """The step runs with oneDNN off (its one-row GELU costs more than PyTorch's own kernel) and
    restores the process-wide flag afterwards, also when the step fails."""
    m, b = small_model(SMALL), make_batch(steps=2)
    with torch.no_grad():
        _, cache = m(**b, use_cache=True)
        for enabled in (True, False):
            torch._C._set_mkldnn_enabled(enabled)
            try:
                m.step(torch.tensor([11, 12]), cache, vocab=(10, 300))
                assert torch._C._get_mkldnn_enabled() is enabled
                with pytest.raises(IndexError):
                    m.step(torch.tensor([10**9, 12]), cache, vocab=(10, 300))  # an id past the vocabulary
                assert torch._C._get_mkldnn_enabled() is enabled
            finally:
                torch._C._set_mkldnn_enabled(True)


def test_cache_is_written_in_place_and_grows_when_full():
    """Decoding writes each token's keys into the preallocated buffers (no copy of the cache per
    step); past the capacity the buffers grow, and every logit still equals the full forward."""
    m, b = small_model(SMALL), make_batch(steps=2)
    T = b["ids"].shape[1]
    full, _ = m(**b)
    cache = KVCache.empty(SMALL, 2, capacity=8)
    ptrs = [k.data_ptr() for k in cache.key_buf]
    outs = []
    with torch.no_grad():
        for t in range(T):
            out, cache = m(**chunk(b, t, t + 1), cache=cache)
            outs.append(out)
            if t < 8:  # within the capacity: the same buffers
                assert [k.data_ptr() for k in cache.key_buf] == ptrs and cache.capacity == 8
    assert cache.length == T and cache.capacity >= T and cache.next_pos.tolist() == [T, T]
    close(torch.cat(outs, dim=1), full, STATE_TOL)


def test_cleared_cache_reuses_its_buffers_for_a_fresh_sequence():
    m, b = small_model(SMALL), make_batch(steps=2)
    with torch.no_grad():
        _, cache = m(**make_batch(steps=1, seed=7), use_cache=True)
        ptr = cache.key_buf[0].data_ptr()
        out, again = m(**b, cache=cache.cleared())
        fresh, _ = m(**b)
    assert again.key_buf[0].data_ptr() == ptr and again.length == b["ids"].shape[1]
    close(out, fresh, STATE_TOL)


def test_logits_of_one_position_per_row_and_of_an_id_range():
    m, b = small_model(SMALL), make_batch(steps=2)
    full, _ = m(**b)
    at = torch.tensor([3, 17])
    for use_cache in (False, True):  # with a cache the last block computes only those positions
        out, cache = m(**chunk(b, 0, 20), logits_at=at, vocab=(100, 140), use_cache=use_cache)
        assert out.shape == (2, 40)
        close(out, full[torch.arange(2), at, 100:140], STATE_TOL)
    after, _ = m(**chunk(b, 20, 25), cache=cache)  # ... and still every position's keys and values
    close(after, full[:, 20:25], STATE_TOL)


def test_invalid_cache_slots_are_ignored():
    m, b = small_model(SMALL), make_batch(steps=2)
    T = b["ids"].shape[1]
    full, _ = m(**b)
    _, junk = m(**make_batch(steps=1, seed=7), use_cache=True)  # slots of another sequence ...
    junk.valid[:] = False  # ... marked invalid (left padding of a batched rollout)
    junk.next_pos[:] = 0
    out, cache = m(**b, cache=junk)
    assert cache.length == junk.length + T
    close(out, full, STATE_TOL)


def test_trim_keeps_the_newest_slots():
    m, b = small_model(SMALL), make_batch()
    _, cache = m(**b, use_cache=True)
    T = cache.length
    assert cache.trim(T) is cache and cache.trim(T + 5) is cache
    t = cache.trim(10)
    assert t.length == 10 and len(t.keys) == len(t.values) == SMALL.num_layers
    for k, v, k0, v0 in zip(t.keys, t.values, cache.keys, cache.values):
        assert torch.equal(k, k0[:, :, -10:]) and torch.equal(v, v0[:, :, -10:])
    assert torch.equal(t.valid, cache.valid[:, -10:])
    assert torch.equal(t.next_pos, cache.next_pos)  # positions keep counting: no drift
    empty = cache.trim(0)
    assert empty.length == 0 and all(k.shape[2] == 0 for k in empty.keys + empty.values)
    with pytest.raises(ValueError, match="-1"):
        cache.trim(-1)
    # an emptied cache is a fresh start (at a later position, which rotary does not see)
    out, _ = m(**chunk(b, 0, 5), cache=empty)
    close(out, m(**chunk(b, 0, 5))[0], STATE_TOL)


@pytest.mark.parametrize("offset", [0, 100_000])
def test_trimmed_cache_equals_recomputing_the_window(offset):
    """Rotary positions are relative, so a window cut out of a long stream and extended gives the
    same logits as the same tokens fed as a fresh sequence from position 0. Exact (up to float
    rounding) for ONE layer: with more layers, cached keys of deeper layers remember the dropped
    tokens, which a recomputation cannot (see the multi-layer test below)."""
    one = dataclasses.replace(SMALL, num_layers=1)
    m, b = small_model(one), make_batch(one)
    T, W = b["ids"].shape[1], 12
    with torch.no_grad():
        _, cache = m(**chunk(b, 0, T - 3), cache=empty_cache(m, 2, offset))
        cache = cache.trim(W)
        assert cache.next_pos.tolist() == [offset + T - 3] * 2
        out, _ = m(**chunk(b, T - 3, T), cache=cache)
        fresh, _ = m(**chunk(b, T - 3 - W, T))
    close(out, fresh[:, -3:], STATE_TOL if offset == 0 else FAR_TOL)


def test_far_positions_give_the_same_logits():
    """All layers: the same tokens give the same logits wherever the stream starts."""
    m, b = small_model(SMALL), make_batch()
    with torch.no_grad():
        full, _ = m(**b)
        far, cache = m(**b, cache=empty_cache(m, 2, 100_000))
    assert cache.next_pos.tolist() == [100_000 + b["ids"].shape[1]] * 2
    close(far, full, FAR_TOL)


def test_sliding_window_rollout_does_not_drift():
    """A token-by-token rollout that trims its cache to W slots: the logits depend only on the
    tokens, not on how far into the stream they are (multi-layer model)."""
    m, b = small_model(SMALL), make_batch()
    T, W = b["ids"].shape[1], 8

    def rollout(start):
        cache, outs = empty_cache(m, 2, start), []
        with torch.no_grad():
            for t in range(T):
                out, cache = m(**chunk(b, t, t + 1), cache=cache.trim(W))
                outs.append(out)
        return torch.cat(outs, dim=1)

    near, far = rollout(0), rollout(100_000)
    close(far, near, FAR_TOL)
    full, _ = m(**b)
    close(near[:, :W + 1], full[:, :W + 1], STATE_TOL)  # before the first trim: the full forward


# ------------------------------------------------------------------------------ positions, modes
def test_eval_mode_is_deterministic():
    m, b = small_model(dataclasses.replace(SMALL, dropout=0.1)), make_batch()
    a, _ = m(**b)
    c, _ = m(**b)
    assert torch.equal(a, c)


def test_patch_position_is_random_in_training_and_the_rounded_mean_in_eval():
    m, b = small_model(SMALL), make_batch()  # dropout 0: only the patch position index is random
    assert (b["patch_pos"][:, 1] - b["patch_pos"][:, 0] > 1).all()
    m.train()
    a, _ = m(**b)
    c, _ = m(**b)
    assert not torch.equal(a, c)
    m.eval()
    # one patch: its embedding is the patch network's output plus the row and column embeddings
    # at the rounded mean of the [lo, hi) interval
    one = dict(ids=torch.zeros(1, 1, dtype=torch.long), kinds=torch.full((1, 1), int(Kind.IMAGE), dtype=torch.uint8),
               local_pos=torch.full((1, 1), -1), patches=b["patches"][:1],
               patch_pos=torch.tensor([[0, 43, 85, 128]], dtype=torch.int16))
    with torch.no_grad():
        got = m.embed_inputs(**one)[0, 0]
        want = m.patch(one["patches"])[0] + m.patch_row.weight[21] + m.patch_col.weight[106]
    close(got, want, 1e-6)  # mean of rows 0..42 is 21; of cols 85..127 it is 106
    assert torch.equal(m.embed_inputs(**one), m.embed_inputs(**one))


def test_local_positions_are_added_only_where_set():
    m = small_model(SMALL)
    ids = torch.tensor([[5, 6]])
    kinds = torch.full((1, 2), int(Kind.TEXT_OBS), dtype=torch.uint8)
    with torch.no_grad():
        x = m.embed_inputs(ids, kinds, torch.tensor([[3, -1]]))
    close(x[0, 0], m.embed.weight[5] + m.local_pos.weight[3], 1e-6)
    close(x[0, 1], m.embed.weight[6], 0)


def test_patch_count_mismatch_is_a_clear_error():
    m, b = small_model(SMALL), make_batch()
    n = b["patches"].shape[0]
    for k in (n - 1, n + 1):
        bad = dict(b, patches=b["patches"][:1].expand(k, -1, -1, -1), patch_pos=b["patch_pos"][:1].expand(k, -1))
        with pytest.raises(ValueError, match=rf"{k} image patches given for {n} IMAGE positions"):
            m(**bad)
    with pytest.raises(ValueError, match=rf"0 image patches given for {n} IMAGE positions"):
        m(**dict(b, patches=None, patch_pos=None))


def test_causality():
    """Changing a future token (an id or an image patch) leaves every earlier logit unchanged."""
    m, b = small_model(SMALL), make_batch()
    full, _ = m(**b)
    t = 30
    is_img = b["kinds"] == Kind.IMAGE
    slot = (is_img.flatten().cumsum(0) - 1).view(is_img.shape)
    future = is_img & (torch.arange(is_img.shape[1]) >= t)
    assert future.any(dim=1).all()
    changed = dict(b, ids=b["ids"].clone(), patches=b["patches"].clone())
    changed["ids"][:, t:] = torch.flip(b["ids"][:, t:], dims=[1])
    changed["patches"][slot[future]] = -0.25
    out, _ = m(**changed)
    close(out[:, :t], full[:, :t], STATE_TOL)
    assert (out[:, t:] - full[:, t:]).abs().max() > 1e-3
