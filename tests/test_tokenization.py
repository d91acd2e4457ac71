"""Tokenization: token map, mu-law and bins, image patches, Gymnasium spaces <-> tokens.

Golden ids are computed by hand from the layout in gato/tokenization/vocab.py (V = 32000):
text [0, 32000), continuous bins [32000, 33024), discrete values [33024, 34048),
'|' 34048, pad 34049, bos 34050. A bin of y in [-1, 1] is floor((y + 1) / 2 * 1024), capped
at 1023.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gato.tokenization import Kind, TokenMap, continuous, decode, encode, images, num_tokens, token_ranges
from gato.tokenization.spaces import ACTION, OBSERVATION, is_image_space
from gato.tokenization.text import TextTokenizer
from gato.tokenization.vocab import (ACTION_KINDS, OBSERVATION_KINDS, TARGET_KINDS, as_action_kinds)

TM = TokenMap()  # V = 32000
C0, D0 = 32000, 33024  # first continuous id, first discrete id (by hand from the layout)
HALF_BIN = 1.0 / 1024  # half of the bin width 2 / 1024, in [-1, 1] space
SLACK = 1.0 + 1e-9  # float64 rounding at bin edges
FAST = settings(max_examples=60, deadline=None)


def mu(x: float) -> float:
    """The paper's F(x) written out independently of the code (mu = 100, M = 256)."""
    return math.copysign(math.log1p(abs(x) * 100) / math.log(256 * 100 + 1), x)


def bin_of(y: float) -> int:
    """Bin of y in [-1, 1], by hand."""
    return min(int(math.floor((y + 1) / 2 * 1024)), 1023)


# ================================================================ token map

def test_token_map_golden_ids_v32000():
    assert TM.text_range() == (0, 32000)
    assert TM.continuous_range() == (32000, 33024)
    assert TM.discrete_range() == (33024, 34048)
    assert (TM.separator, TM.pad, TM.bos, TM.size) == (34048, 34049, 34050, 34051)


def test_token_map_golden_ids_gato_tiny_v4096():
    tm = TokenMap(text_vocab=4096)
    assert tm.continuous_range() == (4096, 5120)
    assert tm.discrete_range() == (5120, 6144)
    assert (tm.separator, tm.pad, tm.bos, tm.size) == (6144, 6145, 6146, 6147)


@pytest.mark.parametrize("v", [1, 300, 4096, 32000, 50257])
def test_token_map_ranges_disjoint_and_contiguous(v):
    tm = TokenMap(text_vocab=v)
    ranges = [tm.text_range(), tm.continuous_range(), tm.discrete_range(),
              (tm.separator, tm.separator + 1), (tm.pad, tm.pad + 1), (tm.bos, tm.bos + 1)]
    assert ranges[0][0] == 0 and ranges[-1][1] == tm.size
    for (lo, hi), (nlo, _) in zip(ranges, ranges[1:]):
        assert lo < hi == nlo
    assert tm.continuous_range()[1] - tm.continuous_range()[0] == 1024
    assert tm.discrete_range()[1] - tm.discrete_range()[0] == 1024
    assert len({tm.separator, tm.pad, tm.bos}) == 3


def test_token_map_describe():
    assert TM.describe(0) == "text:0"
    assert TM.describe(31999) == "text:31999"
    assert TM.describe(32000) == "bin:0"
    assert TM.describe(33023) == "bin:1023"
    assert TM.describe(33024) == "value:0"
    assert TM.describe(34047) == "value:1023"
    assert TM.describe(34048) == "|"
    assert TM.describe(34049) == "<pad>"
    assert TM.describe(34050) == "<bos>"
    assert TM.describe(34051).startswith("invalid")
    assert TM.describe(-1).startswith("invalid")


def test_token_map_dict_round_trip():
    for tm in (TM, TokenMap(text_vocab=4096), TokenMap(text_vocab=500, num_bins=256, num_discrete=64),
               TokenMap(observation_order="key")):
        d = json.loads(json.dumps(tm.to_dict()))  # as a checkpoint stores it
        assert d["size"] == tm.size and d["separator"] == tm.separator
        assert TokenMap.from_dict(d) == tm
    # a map saved before the order existed is the order it was trained with: by key
    old = {k: v for k, v in TM.to_dict().items() if k != "observation_order"}
    assert TokenMap.from_dict(old).observation_order == "key"
    with pytest.raises(ValueError, match="observation_order must be one of"):
        TokenMap(observation_order="alphabetical")


@pytest.mark.parametrize("field", ["size", "separator", "pad", "bos"])
def test_token_map_from_dict_rejects_inconsistent_fields(field):
    d = TM.to_dict()
    d[field] += 1
    with pytest.raises(ValueError, match=field):
        TokenMap.from_dict(d)


@pytest.mark.parametrize("kwargs", [dict(text_vocab=0), dict(num_bins=1), dict(num_discrete=0)])
def test_token_map_rejects_invalid(kwargs):
    with pytest.raises(ValueError):
        TokenMap(**kwargs)


def test_kinds_targets_and_action_mapping():
    assert set(TARGET_KINDS) == {Kind.TEXT, Kind.TEXT_ACTION, Kind.DISCRETE_ACTION, Kind.CONTINUOUS_ACTION}
    assert not set(TARGET_KINDS) & set(OBSERVATION_KINDS)
    assert not {Kind.PAD, Kind.BOS, Kind.SEPARATOR} & set(TARGET_KINDS)
    obs = np.array([Kind.TEXT_OBS, Kind.DISCRETE_OBS, Kind.CONTINUOUS_OBS], np.uint8)
    assert as_action_kinds(obs).tolist() == [Kind.TEXT_ACTION, Kind.DISCRETE_ACTION, Kind.CONTINUOUS_ACTION]
    assert set(as_action_kinds(obs).tolist()) <= set(ACTION_KINDS)
    with pytest.raises(ValueError, match="image"):
        as_action_kinds(np.array([Kind.IMAGE], np.uint8))


# ================================================================ mu-law and bins

@given(st.floats(-256, 256, allow_nan=False))
@FAST
def test_inverse_mu_law_inverts_mu_law(x):
    y = float(continuous.mu_law(x))
    assert -1.0 <= y <= 1.0
    assert math.isclose(float(continuous.inverse_mu_law(y)), x, rel_tol=1e-9, abs_tol=1e-300)
    assert math.isclose(y, mu(x), rel_tol=1e-12, abs_tol=1e-300)  # the paper's formula


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
@FAST
def test_mu_law_monotone(a, b):
    a, b = min(a, b), max(a, b)
    assert continuous.mu_law(a) <= continuous.mu_law(b)


def test_mu_law_endpoints_and_symmetry():
    assert continuous.mu_law(256.0) == pytest.approx(1.0, abs=1e-15)
    assert continuous.mu_law(-256.0) == pytest.approx(-1.0, abs=1e-15)
    assert continuous.mu_law(0.0) == 0.0
    x = np.linspace(-300, 300, 2001)
    y = continuous.mu_law(x)
    assert (np.diff(y) > 0).all()
    np.testing.assert_array_equal(y, -continuous.mu_law(-x))


def test_bins_by_hand():
    assert continuous.to_bins(np.array([-1.0, 0.0, 1.0, 0.5, -0.5]), 1024).tolist() == [0, 512, 1023, 768, 256]
    assert continuous.to_bins(np.array([-5.0, 5.0]), 1024).tolist() == [0, 1023]  # clipped
    np.testing.assert_allclose(continuous.from_bins(np.array([0, 512, 1023]), 1024),
                               [-1 + 1 / 1024, 1 / 1024, 1 - 1 / 1024])


@given(st.floats(-1e4, 1e4))
@example(256.0).via("edge")
@example(-256.0).via("edge")
@example(0.0).via("edge")
@FAST
def test_encode_decode_within_half_bin_companded(x):
    b = continuous.encode(np.array([x]), 1024)
    assert 0 <= b[0] < 1024
    back = continuous.decode(b, 1024)
    assert abs(continuous.mu_law(back)[0] - mu(min(max(x, -256), 256))) <= HALF_BIN * SLACK


@given(st.floats(-1, 1))
@example(-1.0).via("edge")
@example(1.0).via("edge")
@FAST
def test_encode_decode_without_companding(x):
    back = continuous.decode(continuous.encode(np.array([x]), 1024, compand=False), 1024, compand=False)
    assert abs(back[0] - x) <= HALF_BIN * SLACK


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_continuous_non_finite_raises_naming_value(bad):
    with pytest.raises(ValueError, match=r"joint_torque.*index \[1\]"):
        continuous.encode(np.array([0.0, bad]), 1024, name="joint_torque")


@pytest.mark.parametrize("b", [-1, 1024])
def test_from_bins_rejects_out_of_range(b):
    with pytest.raises(ValueError, match="bin index"):
        continuous.decode(np.array([0, b]), 1024)


# ================================================================ images

def _blocks(rows: int, cols: int) -> np.ndarray:
    """uint8 image whose 16x16 block (r, c) is the constant 1 + 10 r + c."""
    img = np.zeros((rows * 16, cols * 16, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            img[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = 1 + 10 * r + c
    return img


def test_patches_are_raster_order():
    rows, cols = 3, 5
    p = images.patchify(_blocks(rows, cols))
    assert p.shape == (rows * cols, 16, 16, 3) and p.dtype == np.float32
    for k in range(rows * cols):
        value = 1 + 10 * (k // cols) + (k % cols)
        np.testing.assert_allclose(p[k], (value / 255 * 2 - 1) / 4, atol=1e-6)


def test_patch_scaling():
    p = images.patchify(np.zeros((16, 16, 3), np.uint8))
    np.testing.assert_allclose(p, -0.25)
    p = images.patchify(np.full((16, 16, 3), 255, np.uint8))
    np.testing.assert_allclose(p, 0.25)
    rng = np.random.default_rng(0)
    u = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    np.testing.assert_allclose(images.patchify(u / 255.0), images.patchify(u), atol=1e-6)
    np.testing.assert_allclose(images.patchify(u.astype(np.float32) / 255), images.patchify(u), atol=1e-6)


def test_greyscale_becomes_three_equal_channels():
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (32, 16), dtype=np.uint8)
    rgb = images.patchify(np.repeat(g[:, :, None], 3, axis=2))
    for img in (g, g[:, :, None]):
        p = images.patchify(img)
        assert p.shape == (2, 16, 16, 3)
        np.testing.assert_array_equal(p[..., 0], p[..., 1])
        np.testing.assert_array_equal(p[..., 0], p[..., 2])
        np.testing.assert_array_equal(p, rgb)


def test_padding_rule_20x33():
    rng = np.random.default_rng(2)
    img = rng.integers(1, 256, (20, 33, 3), dtype=np.uint8)  # no black pixel of its own
    assert images.grid_shape(20, 33) == (2, 3)
    p = images.patchify(img)
    assert p.shape == (6, 16, 16, 3)
    full = images.unpatchify(p, 2, 3)
    assert full.shape == (32, 48, 3)
    np.testing.assert_allclose(full[:20, :33], images.normalise(img), atol=1e-6)
    np.testing.assert_allclose(full[:20, :33], img / 255.0, atol=1e-6)
    assert (full[20:] == 0).all() and (full[:, 33:] == 0).all()  # padding at bottom and right is black
    assert (p[3:, 4:] == -0.25).all()  # second patch row: pixel rows 20..31 are padding
    assert (p[2, :, 1:] == -0.25).all() and (p[2, :, :1] > -0.25).all()  # col 32 is real, 33.. padding


@pytest.mark.parametrize("bad", [np.full((16, 16, 3), 1.5), np.full((16, 16, 3), -0.1),
                                 np.full((16, 16, 3), np.nan), np.full((16, 16), np.inf)])
def test_bad_float_images_raise(bad):
    with pytest.raises(ValueError, match="frame"):
        images.patchify(bad, name="frame")


@pytest.mark.parametrize("shape", [(16,), (16, 16, 4), (16, 16, 2), (16, 16, 3, 1)])
def test_bad_image_shapes_raise(shape):
    with pytest.raises(ValueError, match=r"expected an image.*" + re.escape(str(shape))):
        images.patchify(np.zeros(shape, np.uint8))


def test_bad_image_dtype_raises():
    with pytest.raises(ValueError, match="dtype"):
        images.patchify(np.zeros((16, 16, 3), np.int64))


@pytest.mark.parametrize("rows,cols", [(3, 5), (1, 1), (2, 3), (7, 11), (128, 128)])
def test_patch_positions_cover_0_128(rows, cols):
    pos = images.patch_positions(rows, cols).astype(int)
    assert pos.shape == (rows * cols, 4)
    k = np.arange(rows * cols)
    for (lo_col, hi_col), n, index in (((0, 1), rows, k // cols), ((2, 3), cols, k % cols)):
        lo, hi = pos[:, lo_col], pos[:, hi_col]
        # one interval per row (per column), shared by every patch of that row (column)
        per = [(lo[index == i][0], hi[index == i][0]) for i in range(n)]
        assert all((lo[index == i] == per[i][0]).all() and (hi[index == i] == per[i][1]).all() for i in range(n))
        assert per[0][0] == 0 and per[-1][1] == 128
        for a, b in per:
            assert 0 <= a < b <= 128
        for (a, b), (c, d) in zip(per, per[1:]):
            assert a < c and b <= d  # monotone
            assert c <= b  # no gap: the next interval starts at or before this one ends


def test_patch_positions_rows3_cols5_by_hand():
    pos = images.patch_positions(3, 5)
    # rows: [0*128//3, ceil(128/3)) = [0, 43), [85, 128) for the last; cols: [0, 26), [102, 128)
    assert pos[0].tolist() == [0, 43, 0, 26]
    assert pos[14].tolist() == [85, 128, 102, 128]


# ================================================================ spaces: action round trips

def _dict_unsorted():
    return spaces.Dict(OrderedDict([("zeta", spaces.Discrete(4)), ("alpha", spaces.Box(-1, 1, (2,), np.float64)),
                                    ("mid", spaces.MultiBinary(3))]))


SPACES = {
    "discrete": lambda: spaces.Discrete(7),
    "discrete_start": lambda: spaces.Discrete(5, start=-2),
    "discrete_large": lambda: spaces.Discrete(1024),
    "multidiscrete": lambda: spaces.MultiDiscrete(np.array([[3, 5], [2, 9]])),
    "multidiscrete_start": lambda: spaces.MultiDiscrete([4, 6], start=[10, -3]),
    "multibinary": lambda: spaces.MultiBinary((2, 3)),
    "int_box": lambda: spaces.Box(-3, 12, (2, 2), np.int64),
    "uint8_grid": lambda: spaces.Box(0, 10, (3, 3), np.uint8),
    "bool_box": lambda: spaces.Box(0, 1, (4,), np.bool_),
    "box_unit_f32": lambda: spaces.Box(-1, 1, (3,), np.float32),
    "box_unit": lambda: spaces.Box(-1, 1, (3,), np.float64),
    "box_affine": lambda: spaces.Box(-2, 3, (2, 2), np.float64),
    "box_mixed_bounds": lambda: spaces.Box(np.array([-1, -2, 0]), np.array([1, 3, 100]), dtype=np.float64),
    "box_unbounded": lambda: spaces.Box(-np.inf, np.inf, (4,), np.float64),
    "box_half_bounded": lambda: spaces.Box(np.array([0, -np.inf]), np.array([np.inf, 5]), dtype=np.float64),
    "dict_unsorted": _dict_unsorted,
    "tuple": lambda: spaces.Tuple((spaces.Discrete(3), spaces.Box(-2, 3, (2,), np.float64),
                                   spaces.MultiDiscrete([2, 2]))),
    "dict_mixed": lambda: spaces.Dict(OrderedDict([
        ("wheel", spaces.Box(-np.inf, np.inf, (2,), np.float64)),
        ("buttons", spaces.MultiBinary(4)),
        ("arm", spaces.Tuple((spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(6, start=1)))),
        ("grip", spaces.Box(0, 4, (1,), np.int32)),
        ("nested", spaces.Dict({"b": spaces.Discrete(2), "a": spaces.Box(-5, 5, (1,), np.float64)})),
    ])),
}


def _assert_close(space, action, decoded):
    """decoded equals action for discrete spaces, within half a bin for continuous Boxes."""
    if isinstance(space, spaces.Dict):
        assert set(decoded) == set(space.spaces)
        for k, s in space.spaces.items():
            _assert_close(s, action[k], decoded[k])
    elif isinstance(space, spaces.Tuple):
        assert len(decoded) == len(space.spaces)
        for s, a, d in zip(space.spaces, action, decoded):
            _assert_close(s, a, d)
    elif isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        a = np.asarray(action, np.float64).reshape(-1)
        d = np.asarray(decoded, np.float64).reshape(-1)
        low = np.broadcast_to(space.low, space.shape).astype(np.float64).reshape(-1)
        high = np.broadcast_to(space.high, space.shape).astype(np.float64).reshape(-1)
        for x, y, lo, hi in zip(a, d, low, high):
            if np.isfinite(lo) and np.isfinite(hi):  # affine onto [-1, 1]: half a bin is (hi - lo) / 2048
                assert abs(y - min(max(x, lo), hi)) <= (hi - lo) / 1024 / 2 * SLACK, (x, y, lo, hi)
            else:  # mu-law: half a bin in companded space
                assert abs(mu(y) - mu(min(max(x, -256.0), 256.0))) <= HALF_BIN * SLACK, (x, y)
    else:
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(action))


@pytest.mark.parametrize("name", sorted(SPACES))
@given(seed=st.integers(0, 2**32 - 1))
@FAST
def test_action_round_trip_over_samples(name, seed):
    space = SPACES[name]()
    space.seed(seed)
    action = space.sample()
    toks = encode(space, action, TM, role=ACTION)
    assert len(toks) == num_tokens(space) == len(token_ranges(space, TM))
    for tok, (lo, hi) in zip(toks.ids, token_ranges(space, TM)):
        assert lo <= tok < hi  # every encoded action token lies in the range the sampler uses
    decoded = decode(space, toks.ids, TM)
    assert space.contains(decoded), (action, decoded)
    _assert_close(space, action, decoded)


@pytest.mark.parametrize("low,high", [(-1.0, 1.0), (-2.0, 3.0), (0.0, 100.0), (-1e-3, 1e-3)])
@given(k=st.integers(0, 1024), frac=st.floats(0, 1))
@FAST
def test_bounded_box_action_within_half_bin_at_edges(low, high, k, frac):
    """Values on and between bin edges (the worst case) and beyond the bounds."""
    space = spaces.Box(low, high, (3,), np.float64)
    edge = low + k * (high - low) / 1024
    x = np.array([edge, low + frac * (high - low), high + 7.0 * frac if k % 2 else low - 7.0 * frac])
    decoded = decode(space, encode(space, x, TM, role=ACTION).ids, TM)
    assert space.contains(decoded)
    _assert_close(space, x, decoded)


@given(st.lists(st.floats(-1e5, 1e5), min_size=4, max_size=4))
@example([256.0, -256.0, 0.0, 1e-12]).via("edge")
@FAST
def test_unbounded_box_action_within_half_bin(values):
    space = SPACES["box_unbounded"]()
    x = np.array(values)
    decoded = decode(space, encode(space, x, TM, role=ACTION).ids, TM)
    assert space.contains(decoded)
    _assert_close(space, x, decoded)


def test_dict_tokens_in_lexicographic_key_order():
    space = _dict_unsorted()
    assert list(space.spaces) == ["zeta", "alpha", "mid"]  # the space itself is not sorted
    action = {"zeta": 3, "alpha": np.array([-1.0, 1.0]), "mid": np.array([1, 0, 1], np.int8)}
    toks = encode(space, action, TM, role=ACTION)
    # alpha (bins 0 and 1023), mid (1, 0, 1), zeta (3)
    assert toks.ids.tolist() == [C0 + 0, C0 + 1023, D0 + 1, D0 + 0, D0 + 1, D0 + 3]
    decoded = decode(space, toks.ids, TM)
    assert decoded["zeta"] == 3 and decoded["mid"].tolist() == [1, 0, 1]
    np.testing.assert_allclose(decoded["alpha"], [-1 + 1 / 1024, 1 - 1 / 1024])


def test_golden_action_ids():
    assert encode(spaces.Discrete(5, start=-2), -2, TM, role=ACTION).ids.tolist() == [D0]
    assert encode(spaces.Discrete(5, start=-2), 2, TM, role=ACTION).ids.tolist() == [D0 + 4]
    assert encode(spaces.MultiDiscrete([4, 6], start=[10, -3]), np.array([13, -3]), TM,
                  role=ACTION).ids.tolist() == [D0 + 3, D0]
    assert encode(spaces.Box(-3, 12, (2,), np.int64), np.array([-3, 12]), TM,
                  role=ACTION).ids.tolist() == [D0, D0 + 15]
    # affine action [-2, 3]: 0.5 is the centre -> y = 0 -> bin 512; -2 -> bin 0; 3 -> bin 1023
    box = spaces.Box(-2, 3, (3,), np.float64)
    assert encode(box, np.array([0.5, -2.0, 3.0]), TM, role=ACTION).ids.tolist() == [C0 + 512, C0, C0 + 1023]
    # unbounded action: mu-law, as for observations
    ub = spaces.Box(-np.inf, np.inf, (2,), np.float64)
    assert encode(ub, np.array([0.5, 10.0]), TM, role=ACTION).ids.tolist() == [C0 + bin_of(mu(0.5)), C0 + bin_of(mu(10.0))]


# ================================================================ spaces: token ranges

@pytest.mark.parametrize("name", sorted(SPACES))
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_any_id_inside_token_ranges_decodes_to_valid_action(name, seed):
    space = SPACES[name]()
    ranges = token_ranges(space, TM)
    for lo, hi in ranges:
        assert lo < hi
        assert (lo, hi) == TM.continuous_range() or (TM.discrete_start <= lo and hi <= TM.discrete_range()[1])
    rng = np.random.default_rng(seed)
    candidates = [np.array([rng.integers(lo, hi) for lo, hi in ranges]),
                  np.array([lo for lo, _ in ranges]), np.array([hi - 1 for _, hi in ranges])]
    for ids in candidates:
        assert space.contains(decode(space, ids, TM)), (ids, decode(space, ids, TM))


def test_token_ranges_capped_at_1024_values():
    assert token_ranges(spaces.Discrete(2000), TM) == [(D0, D0 + 1024)]
    assert token_ranges(spaces.MultiDiscrete([2000, 3]), TM) == [(D0, D0 + 1024), (D0, D0 + 3)]
    assert token_ranges(spaces.Box(-5, 5000, (1,), np.int64), TM) == [(D0, D0 + 1024)]
    assert token_ranges(spaces.Box(0, 9, (2,), np.uint8), TM) == [(D0, D0 + 10)] * 2


def test_integer_box_with_huge_bounds():
    """int64 bounds: high - low + 1 must not overflow (the range would be empty or negative)."""
    space = spaces.Box(0, np.iinfo(np.int64).max, (2,), np.int64)
    assert token_ranges(space, TM) == [(D0, D0 + 1024)] * 2
    assert encode(space, np.array([5, 1023]), TM).ids.tolist() == [D0 + 5, D0 + 1023]
    with pytest.raises(ValueError, match="1024"):
        encode(space, np.array([5, 1024]), TM)
    full = spaces.Box(np.iinfo(np.int64).min, np.iinfo(np.int64).max, (1,), np.int64)
    assert token_ranges(full, TM) == [(D0, D0 + 1024)]


def test_decode_id_outside_range_names_token_index():
    space = spaces.Tuple((spaces.Discrete(3), spaces.Discrete(3), spaces.Box(-1, 1, (1,))))
    with pytest.raises(ValueError, match=r"action token 1\b.*3[34]\d\d\d"):
        decode(space, np.array([D0, D0 + 3, C0]), TM)  # 3 is not a value of Discrete(3)
    with pytest.raises(ValueError, match=r"action token 2\b"):
        decode(space, np.array([D0, D0, TM.separator]), TM)
    with pytest.raises(ValueError, match=r"action token 0\b"):
        decode(space, np.array([C0, D0, C0]), TM)  # a bin id where a discrete value belongs
    with pytest.raises(ValueError, match="needs 3 tokens, got 2"):
        decode(space, np.array([D0, D0]), TM)


# ================================================================ observations

def test_image_observation():
    space = spaces.Box(0, 255, (32, 32, 3), np.uint8)
    assert is_image_space(space)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    toks = encode(space, x, TM)
    assert len(toks) == 4
    assert (toks.kinds == Kind.IMAGE).all() and (toks.ids == -1).all()
    assert toks.patches.shape == (4, 16, 16, 3) and toks.patch_pos.shape == (4, 4)
    np.testing.assert_array_equal(toks.patches, images.patchify(x))
    np.testing.assert_array_equal(toks.patch_pos, images.patch_positions(2, 2))


@pytest.mark.parametrize("shape", [(16, 16), (20, 33, 1), (16, 40, 3)])
def test_image_space_shapes(shape):
    space = spaces.Box(0, 255, shape, np.uint8)
    assert is_image_space(space)
    toks = encode(space, space.sample(), TM)
    rows, cols = -(-shape[0] // 16), -(-shape[1] // 16)
    assert len(toks) == rows * cols and toks.patches.shape[-1] == 3


@pytest.mark.parametrize("space", [spaces.Box(0, 255, (7, 7, 3), np.uint8), spaces.Box(0, 255, (15, 40), np.uint8),
                                   spaces.Box(0, 255, (32, 32, 4), np.uint8), spaces.Box(0, 255, (32, 32, 3), np.int64),
                                   spaces.Box(0, 1, (32, 32, 3), np.float32)])
def test_not_image_spaces(space):
    assert not is_image_space(space)


def test_babyai_like_grid_is_discrete():
    space = spaces.Box(0, 10, (7, 7, 3), np.uint8)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 11, (7, 7, 3), dtype=np.uint8)
    toks = encode(space, x, TM)
    assert len(toks) == 147 and (toks.kinds == Kind.DISCRETE_OBS).all()
    np.testing.assert_array_equal(toks.ids, D0 + x.reshape(-1).astype(np.int64))  # row-major
    assert toks.patches.shape[0] == 0


def test_text_observation():
    tok = TextTokenizer.default()
    space = spaces.Text(max_length=200)
    s = "go to the red ball, then open the door"
    toks = encode(space, s, TM, text=tok)
    assert len(toks) > 0 and (toks.kinds == Kind.TEXT_OBS).all()
    assert (toks.ids >= 0).all() and (toks.ids < tok.vocab_size).all()
    assert tok.decode(toks.ids) == s
    assert decode(space, toks.ids, TM, text=tok) == s
    with pytest.raises(ValueError, match="tokenizer"):
        encode(space, s, TM)
    with pytest.raises(ValueError, match="text range"):  # tokenizer ids beyond the map's text ids
        encode(space, "zzzz qqqq xylophone", TokenMap(text_vocab=258), text=tok)


def test_continuous_observation_companding_rule():
    unit = spaces.Box(-1, 1, (2,), np.float64)
    unbounded = spaces.Box(-np.inf, np.inf, (3,), np.float64)
    affine = spaces.Box(-2, 3, (1,), np.float64)
    # in [-1, 1]: binned as is: 0.5 -> floor(1.5 * 512) = 768, -0.5 -> 256
    toks = encode(unit, np.array([0.5, -0.5]), TM)
    assert toks.ids.tolist() == [C0 + 768, C0 + 256]
    assert (toks.kinds == Kind.CONTINUOUS_OBS).all()
    # unbounded: mu-law first. mu(0.5) = ln 51 / ln 25601 = 0.38736 -> bin 710;
    # mu(10) = ln 1001 / ln 25601 = 0.68064 -> bin 860; mu(-10) -> bin 1023 - 860 = 163
    assert [bin_of(mu(0.5)), bin_of(mu(10.0)), bin_of(mu(-10.0))] == [710, 860, 163]
    assert encode(unbounded, np.array([0.5, 10.0, -10.0]), TM).ids.tolist() == [C0 + 710, C0 + 860, C0 + 163]
    # finite bounds outside [-1, 1]: observations are companded (actions are mapped affinely)
    assert encode(affine, np.array([0.5]), TM).ids.tolist() == [C0 + 710]
    assert encode(affine, np.array([0.5]), TM, role=ACTION).ids.tolist() == [C0 + 512]


def test_dict_observation_golden_ids():
    space = spaces.Dict(OrderedDict([("z", spaces.Discrete(5)), ("a", spaces.Box(-1, 1, (2,), np.float64)),
                                     ("m", spaces.MultiBinary(3))]))
    obs = {"z": 4, "a": np.array([0.5, -0.5]), "m": np.array([1, 0, 1], np.int8)}
    toks = encode(space, obs, TM)
    assert toks.ids.tolist() == [32768, 32256, 33025, 33024, 33025, 33028]
    assert toks.kinds.tolist() == [Kind.CONTINUOUS_OBS] * 2 + [Kind.DISCRETE_OBS] * 4


def test_dict_observation_with_image_and_vector():
    space = spaces.Dict({"pixels": spaces.Box(0, 255, (16, 32, 3), np.uint8),
                         "arm": spaces.Box(-1, 1, (2,), np.float32)})
    obs = space.sample()
    toks = encode(space, obs, TM)
    # the paper's order: image patches before tensors, although "arm" < "pixels"
    assert toks.kinds.tolist() == [Kind.IMAGE] * 2 + [Kind.CONTINUOUS_OBS] * 2
    assert toks.ids[:2].tolist() == [-1, -1] and toks.patches.shape[0] == 2
    # by key alone (checkpoints trained before the paper's order): two continuous tokens first
    by_key = encode(space, obs, TokenMap(observation_order="key"))
    assert by_key.kinds.tolist() == [Kind.CONTINUOUS_OBS] * 2 + [Kind.IMAGE] * 2
    np.testing.assert_array_equal(by_key.ids[:2], toks.ids[2:])


def test_observation_text_comes_first_then_images_then_tensors():
    """The paper's timestep [text, image patches, tensors]: BabyAI's mission before its grid."""
    from gato.tokenization.spaces import dict_keys
    from gato.tokenization.text import TextTokenizer

    text = TextTokenizer.default()
    space = spaces.Dict({"direction": spaces.Discrete(4), "image": spaces.Box(0, 10, (7, 7, 3), np.uint8),
                         "mission": spaces.Text(64), "camera": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                         "nested": spaces.Dict({"note": spaces.Text(8), "x": spaces.Discrete(2)})})
    assert dict_keys(space, "modality") == ["mission", "nested", "camera", "direction", "image"]
    assert dict_keys(space, "key") == ["camera", "direction", "image", "mission", "nested"]
    obs = {"direction": 1, "image": np.zeros((7, 7, 3), np.uint8), "mission": "go to the red ball",
           "camera": np.zeros((16, 16, 3), np.uint8), "nested": {"note": "hi", "x": 1}}
    toks = encode(space, obs, TM, text=text)
    n_mission = len(text.encode("go to the red ball"))
    assert toks.ids[:n_mission].tolist() == list(text.encode("go to the red ball"))
    kinds = toks.kinds.tolist()
    assert kinds[-148:] == [Kind.DISCRETE_OBS] * 148  # direction, then the 147 grid values
    assert kinds.index(Kind.IMAGE) > n_mission


# ================================================================ bad inputs

def test_wrong_shape_names_expected_and_got():
    with pytest.raises(ValueError, match=r"expected shape \(3,\).*got \(4,\)"):
        encode(spaces.Box(-1, 1, (3,)), np.zeros(4, np.float32), TM)
    with pytest.raises(ValueError, match=r"\(7, 7, 3\).*\(7, 7\)"):
        encode(spaces.Box(0, 10, (7, 7, 3), np.uint8), np.zeros((7, 7), np.uint8), TM)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        encode(spaces.MultiDiscrete([2, 2]), np.zeros(3, np.int64), TM)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        encode(spaces.Discrete(3), np.array([1, 2]), TM)


def test_wrong_dtype():
    with pytest.raises(ValueError, match="integer"):
        encode(spaces.Discrete(3), 1.0, TM)
    with pytest.raises(ValueError, match="integer"):
        encode(spaces.Box(0, 5, (2,), np.int64), np.array([1.0, 2.0]), TM)
    with pytest.raises(ValueError, match="integer"):
        encode(spaces.MultiBinary(2), np.array([0.0, 1.0]), TM)
    with pytest.raises(ValueError, match="uint8"):
        encode(spaces.Box(0, 255, (16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.float32), TM)
    with pytest.raises(ValueError, match="numeric"):
        encode(spaces.Box(-1, 1, (2,)), np.array(["a", "b"]), TM)


def test_dict_missing_and_extra_keys_named():
    space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "door": spaces.Discrete(2)})
    with pytest.raises(ValueError, match=r"missing \['door'\]"):
        encode(space, {"pos": np.zeros(2, np.float32)}, TM)
    with pytest.raises(ValueError, match=r"unexpected \['zzz'\]"):
        encode(space, {"pos": np.zeros(2, np.float32), "door": 1, "zzz": 0}, TM)
    with pytest.raises(ValueError, match="mapping"):
        encode(space, [np.zeros(2), 1], TM)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("role", [OBSERVATION, ACTION])
def test_non_finite_continuous_raises_never_clips(bad, role):
    space = spaces.Dict({"pos": spaces.Box(-np.inf, np.inf, (3,), np.float64)})
    with pytest.raises(ValueError, match=r"\['pos'\].*non-finite.*index \[2\]"):
        encode(space, {"pos": np.array([0.0, 1.0, bad])}, TM, role=role)
    with pytest.raises(ValueError, match="non-finite"):
        encode(spaces.Box(-1, 1, (1,), np.float64), np.array([bad]), TM, role=role)


@pytest.mark.parametrize("space,value", [
    (spaces.Discrete(3), 3),
    (spaces.Discrete(3), -1),
    (spaces.Discrete(5, start=-2), -3),
    (spaces.Discrete(5, start=-2), 3),
    (spaces.Discrete(2000), 1024),
    (spaces.Discrete(2000), 1999),
    (spaces.MultiDiscrete([3, 3]), np.array([0, 3])),
    (spaces.MultiDiscrete([2000]), np.array([1500])),
    (spaces.MultiBinary(2), np.array([0, 2])),
    (spaces.Box(-3, 12, (2,), np.int64), np.array([-4, 0])),
    (spaces.Box(-3, 12, (2,), np.int64), np.array([0, 13])),
    (spaces.Box(0, 2000, (1,), np.int64), np.array([1024])),
])
def test_discrete_value_out_of_range(space, value):
    with pytest.raises(ValueError, match=r"discrete value .* outside \[0, "):
        encode(space, value, TM)


def test_discrete_in_range_edges_accepted():
    assert encode(spaces.Discrete(2000), 1023, TM).ids.tolist() == [D0 + 1023]
    assert encode(spaces.Discrete(2000), 0, TM).ids.tolist() == [D0]


def test_text_needs_str():
    tok = TextTokenizer.default()
    for bad in (b"bytes", 3, None, ["a"]):
        with pytest.raises(ValueError, match="expected str"):
            encode(spaces.Text(10), bad, TM, text=tok)


def test_text_length_outside_space_bounds():
    tok = TextTokenizer.default()
    with pytest.raises(ValueError, match="12 characters, expected 1 to 10"):
        encode(spaces.Text(10), "twelve chars", TM, text=tok, name="mission")
    with pytest.raises(ValueError, match="expected 3 to 10"):
        encode(spaces.Text(10, min_length=3), "ab", TM, text=tok)
    assert len(encode(spaces.Text(12), "twelve chars", TM, text=tok)) > 0


@pytest.mark.parametrize("space", [spaces.Sequence(spaces.Discrete(2)),
                                   spaces.Graph(spaces.Box(-1, 1, (2,)), spaces.Discrete(2))])
def test_unsupported_space_type(space):
    with pytest.raises(TypeError, match="unsupported space type"):
        encode(space, space.sample(), TM, name="obs")
    with pytest.raises(TypeError):
        token_ranges(space, TM)


def test_image_action_space_has_no_token_ranges():
    with pytest.raises(TypeError):
        token_ranges(spaces.Box(0, 255, (16, 16, 3), np.uint8), TM)


def test_docs_worked_example():
    """The timestep worked out by hand in docs/tokens.md."""
    obs_space = spaces.Dict({"velocity": spaces.Box(-np.inf, np.inf, (1,), np.float64),
                             "door": spaces.Discrete(3), "arm": spaces.Box(-1, 1, (2,), np.float64)})
    act_space = spaces.Box(-1, 1, (2,), np.float64)
    o = encode(obs_space, {"velocity": np.array([10.0]), "door": 2, "arm": np.array([0.5, -0.5])}, TM)
    a = encode(act_space, np.array([0.0, 1.0]), TM, role=ACTION)
    assert o.ids.tolist() + [TM.separator] + a.ids.tolist() == [32768, 32256, 33026, 32860, 34048, 32512, 33023]
    np.testing.assert_allclose(decode(act_space, a.ids, TM), [1 / 1024, 1 - 1 / 1024])
