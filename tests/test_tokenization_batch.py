"""Batched tokenization (one call for the N environments of an agent) equals per-row tokenization."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from test_tokenization import SPACES, TM  # the same spaces the per-row tests cover

from gato.tokenization import Kind, decode, encode, images, token_ranges
from gato.tokenization.batched import decode_batch, encode_batch
from gato.tokenization.spaces import ACTION, OBSERVATION

N = 5
IMAGE_SPACES = {
    "rgb": lambda: spaces.Box(0, 255, (20, 33, 3), np.uint8),
    "grey": lambda: spaces.Box(0, 255, (32, 16), np.uint8),
    "grey1": lambda: spaces.Box(0, 255, (16, 16, 1), np.uint8),
    "dict_image_vector": lambda: spaces.Dict({"pixels": spaces.Box(0, 255, (16, 32, 3), np.uint8),
                                              "state": spaces.Box(-np.inf, np.inf, (3,), np.float32)}),
}


def _samples(space, seed):
    space.seed(seed)
    return [space.sample() for _ in range(N)]


@pytest.mark.parametrize("name,role", [(n, r) for n in sorted(SPACES) + sorted(IMAGE_SPACES)
                                       for r in (OBSERVATION, ACTION)
                                       if not (r == ACTION and n in IMAGE_SPACES)])  # no image actions
def test_encode_batch_equals_encoding_each_value(name, role):
    space = (SPACES | IMAGE_SPACES)[name]()
    for seed in range(3):
        xs = _samples(space, seed)
        batch = encode_batch(space, xs, TM, role=role)
        assert batch is not None and batch.ids.shape[0] == N
        for r, x in enumerate(xs):
            one = encode(space, x, TM, role=role)
            got = batch.row(r)
            np.testing.assert_array_equal(got.ids, one.ids)
            np.testing.assert_array_equal(got.kinds, one.kinds)
            np.testing.assert_array_equal(got.patches, one.patches)
            np.testing.assert_array_equal(got.patch_pos, one.patch_pos)
    if name in IMAGE_SPACES:
        assert (batch.kinds == Kind.IMAGE).any()


def test_patchify_batch_equals_patchify_each_image():
    rng = np.random.default_rng(0)
    for shape in [(3, 20, 33, 3), (3, 32, 16), (2, 16, 48, 1)]:
        imgs = rng.integers(0, 256, shape, dtype=np.uint8)
        out = images.patchify_batch(imgs)
        for img, p in zip(imgs, out):
            np.testing.assert_array_equal(p, images.patchify(img))


BAD = [  # values the per-row path must report, naming them: the batch path declines them
    (spaces.Box(-1, 1, (2,), np.float32), [np.zeros(2, np.float32), np.zeros(3, np.float32)]),
    (spaces.Box(-np.inf, np.inf, (2,), np.float64), [np.zeros(2), np.array([0.0, np.nan])]),
    (spaces.Box(-1, 1, (2,), np.float32), [np.zeros(2, bool), np.zeros(2, bool)]),
    (spaces.Discrete(3), [0, 3]),
    (spaces.MultiDiscrete([2, 2]), [np.array([0, 1]), np.array([2, 0])]),
    (spaces.Box(0, 255, (16, 16, 3), np.uint8), [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.float32)]),
    (spaces.Dict({"a": spaces.Discrete(2)}), [{"a": 0}, {"b": 0}]),
    (spaces.Text(5), ["ab", "cd"]),  # text: the token count varies per value
]


@pytest.mark.parametrize("space,xs", BAD, ids=[f"{type(s).__name__}{i}" for i, (s, _) in enumerate(BAD)])
def test_encode_batch_leaves_bad_or_ragged_values_to_the_per_row_path(space, xs):
    assert encode_batch(space, xs, TM) is None


def test_encode_batch_accepts_python_scalars_and_lists():
    got = encode_batch(spaces.Discrete(4, start=2), [2, 5, np.int64(3)], TM)
    np.testing.assert_array_equal(got.ids[:, 0], [TM.discrete_start, TM.discrete_start + 3, TM.discrete_start + 1])


@pytest.mark.parametrize("name", sorted(SPACES))
def test_decode_batch_equals_decoding_each_row(name):
    space = SPACES[name]()
    rng = np.random.default_rng(0)
    ranges = np.array(token_ranges(space, TM))
    ids = rng.integers(ranges[:, 0], ranges[:, 1], size=(N, len(ranges)))
    got = decode_batch(space, ids, TM)
    assert len(got) == N
    for row, action in zip(ids, got):
        want = decode(space, row, TM)
        assert space.contains(action)
        _assert_same(want, action)


def _assert_same(want, got):
    if isinstance(want, dict):
        assert list(want) == list(got)
        for k in want:
            _assert_same(want[k], got[k])
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for w, g in zip(want, got):
            _assert_same(w, g)
    else:
        assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got, want)


def test_decode_batch_names_the_row_and_token_outside_its_range():
    space = spaces.MultiDiscrete([3, 5])
    ids = np.full((3, 2), TM.discrete_start)
    ids[2, 1] = TM.discrete_start + 5
    with pytest.raises(ValueError, match=r"action 2, token 1 .* outside the valid range"):
        decode_batch(space, ids, TM)
    with pytest.raises(ValueError, match=r"need shape \(N, 2\)"):
        decode_batch(space, ids[:, :1], TM)
