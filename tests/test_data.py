"""Data: the sequence layout of episodes, documents and image-text examples, windows, prompts,
packing, mixture batches, and bad inputs.

Expected ids are derived by hand from the documented token map (gato/tokenization/vocab.py) and
layout (gato/data/layout.py), with text vocabulary V = 4096:
    continuous bins [V, V+1024), discrete values [V+1024, V+2048), '|' V+2048, pad V+2049,
    BOS V+2050; an episode is [BOS] + per step [observation (Dict keys sorted), '|', action].
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gato.data import synthetic
from gato.data.episode import Episode, TaskSpec
from gato.data.layout import EpisodeLayout, Sequence, document, image_text
from gato.data.sampling import ControlSource, DocumentSource, ImageTextSource, Mixture, collate
from gato.tokenization import images
from gato.tokenization.text import TextTokenizer
from gato.tokenization.vocab import ACTION_KINDS, OBSERVATION_KINDS, TARGET_KINDS, Kind, TokenMap

V = 4096
TM = TokenMap(text_vocab=V)
CONT, DISC, SEP, PAD, BOS = V, V + 1024, V + 2048, V + 2049, V + 2050
K = Kind


@pytest.fixture(scope="module")
def text() -> TextTokenizer:
    return TextTokenizer.default()


def test_token_map_constants_match_the_documented_layout():
    # The hand-derived constants below rely on these; a change of the map must be deliberate.
    assert (TM.continuous_start, TM.discrete_start, TM.separator, TM.pad, TM.bos) == (CONT, DISC, SEP, PAD, BOS)


# ------------------------------------------------------------------ the golden task

# Keys declared out of lexicographic order: the layout must sort them itself.
GOLDEN = TaskSpec(
    "test/golden",
    spaces.Dict(OrderedDict([
        ("pos", spaces.Box(-np.inf, np.inf, (2,), np.float32)),
        ("mission", spaces.Text(64)),
        ("image", spaces.Box(0, 255, (32, 16, 3), np.uint8)),
        ("cell", spaces.Discrete(5)),
    ])),
    spaces.Dict(OrderedDict([
        ("torque", spaces.Box(-1.0, 1.0, (1,), np.float32)),
        ("button", spaces.Discrete(3)),
    ])),
)

# A value whose mu-law image is the centre of bin 256: F(x) = y  <=>  |x| = ((M mu + 1)^|y| - 1) / mu
# with M mu + 1 = 25601; bin centre of 256 is (256 + 0.5) / 1024 * 2 - 1 = -0.4990234375.
X_BIN_256 = -(25601.0 ** 0.4990234375 - 1.0) / 100.0


def _halves(top: int, bottom: int) -> np.ndarray:
    img = np.empty((32, 16, 3), np.uint8)
    img[:16], img[16:] = top, bottom
    return img


def _golden_episode() -> Episode:
    obs = [
        {"pos": np.array([0.0, 256.0], np.float32), "mission": "go to the red door",
         "image": _halves(255, 0), "cell": 3},
        {"pos": np.array([X_BIN_256, -1e6], np.float32), "mission": "pick up the key",
         "image": _halves(0, 255), "cell": 4},
    ]
    act = [{"torque": np.array([1.0], np.float32), "button": 2},
           {"torque": np.array([-0.5], np.float32), "button": 0}]
    return Episode(obs, act)


def _golden_step(cell, mission_ids, pos_bins, button, torque_bin, slot):
    """Hand layout of one step, the paper's [text, image patches, tensors] with each group by key:
    mission, image (2 patches), cell, pos | button, torque."""
    m = [int(i) for i in mission_ids]
    obs_ids = [*m, slot, slot + 1, DISC + cell, CONT + pos_bins[0], CONT + pos_bins[1]]
    obs_kinds = [K.TEXT_OBS] * len(m) + [K.IMAGE, K.IMAGE, K.DISCRETE_OBS] + [K.CONTINUOUS_OBS] * 2
    ids = obs_ids + [SEP, DISC + button, CONT + torque_bin]
    kinds = obs_kinds + [K.SEPARATOR, K.DISCRETE_ACTION, K.CONTINUOUS_ACTION]
    local = list(range(len(obs_ids))) + [-1, -1, -1]
    loss = [False] * len(obs_ids) + [False, True, True]
    return ids, kinds, local, loss


def test_golden_layout_of_a_two_step_episode(text):
    ep = _golden_episode()
    layout = EpisodeLayout(GOLDEN, TM, text)
    seq = layout.steps(ep, 0, 2, with_bos=True)

    m1, m2 = text.encode("go to the red door"), text.encode("pick up the key")
    assert len(m1) > 0 and len(m2) > 0 and len(m1) != len(m2)
    # pos: 0.0 -> F = 0 -> floor((0 + 1) / 2 * 1024) = 512; 256 -> F = 1 -> 1024, capped to 1023;
    # X_BIN_256 -> 256; -1e6 -> F < -1, clipped to -1 -> bin 0. cell 3 -> value 3.
    # torque (bounds [-1, 1], no companding): 1.0 -> 1023; -0.5 -> floor(0.5 / 2 * 1024) = 256.
    s1 = _golden_step(3, m1, (512, 1023), 2, 1023, slot=0)
    s2 = _golden_step(4, m2, (256, 0), 0, 256, slot=2)
    ids = [BOS] + s1[0] + s2[0]
    kinds = [K.BOS] + s1[1] + s2[1]
    local = [-1] + s1[2] + s2[2]
    loss = [False] + s1[3] + s2[3]

    np.testing.assert_array_equal(seq.kinds, np.array(kinds, np.uint8))
    np.testing.assert_array_equal(seq.ids, ids)
    np.testing.assert_array_equal(seq.local_pos, local)
    np.testing.assert_array_equal(seq.loss_mask, loss)
    # the loss mask is exactly the action tokens
    np.testing.assert_array_equal(seq.loss_mask, np.isin(seq.kinds, ACTION_KINDS))

    # patches: raster order, white -> (1 * 2 - 1) / 4 = 0.25, black -> -0.25
    assert seq.patches.shape == (4, 16, 16, 3)
    for slot, value in enumerate([0.25, -0.25, -0.25, 0.25]):
        np.testing.assert_allclose(seq.patches[slot], value)
    np.testing.assert_array_equal(
        seq.patches, np.concatenate([images.patchify(o["image"]) for o in ep.observations]))
    # two patch rows of one column: rows [0, 64) and [64, 128) of 128 bins, the column spans all
    hand_pos = [[0, 64, 0, 128], [64, 128, 0, 128]]
    np.testing.assert_array_equal(seq.patch_pos, hand_pos * 2)
    np.testing.assert_array_equal(seq.patch_pos, np.concatenate([images.patch_positions(2, 1)] * 2))

    # one step alone, without BOS, numbers its patches from 0
    one = layout.steps(ep, 1, 2, with_bos=False)
    s2_alone = _golden_step(4, m2, (256, 0), 0, 256, slot=0)
    np.testing.assert_array_equal(one.ids, s2_alone[0])
    np.testing.assert_array_equal(one.kinds, np.array(s2_alone[1], np.uint8))
    np.testing.assert_array_equal(one.patches, seq.patches[2:])

    # step_lengths counts the same tokens without tokenizing
    np.testing.assert_array_equal(layout.step_lengths(ep), [len(s1[0]), len(s2[0])])


# ------------------------------------------------------------------ windows

MISSIONS = ["go", "open the door", "pick up the purple ball behind you", "put the key next to the box"]


def _random_golden_episode(rng, steps: int) -> Episode:
    obs, act = [], []
    for _ in range(steps):
        obs.append({"pos": rng.normal(0, 5, 2).astype(np.float32),
                    "mission": MISSIONS[int(rng.integers(len(MISSIONS)))],
                    "image": rng.integers(0, 256, (32, 16, 3), dtype=np.uint8),
                    "cell": int(rng.integers(5))})
        act.append({"torque": rng.uniform(-1, 1, 1).astype(np.float32), "button": int(rng.integers(3))})
    return Episode(obs, act)


def _assert_same_positions(win: Sequence, full: Sequence, start: int, stop: int):
    """`win` equals positions [start, stop) of `full`, patches compared by slot."""
    assert len(win) == stop - start
    ref_kinds = full.kinds[start:stop]
    np.testing.assert_array_equal(win.kinds, ref_kinds)
    np.testing.assert_array_equal(win.local_pos, full.local_pos[start:stop])
    np.testing.assert_array_equal(win.loss_mask, full.loss_mask[start:stop])
    img = ref_kinds == K.IMAGE
    np.testing.assert_array_equal(win.ids[~img], full.ids[start:stop][~img])
    # a window keeps only its patches, numbered 0..P-1 in order
    np.testing.assert_array_equal(win.ids[img], np.arange(int(img.sum())))
    assert len(win.patches) == len(win.patch_pos) == int(img.sum())
    ref_slots = full.ids[start:stop][img]
    np.testing.assert_array_equal(win.patches, full.patches[ref_slots])
    np.testing.assert_array_equal(win.patch_pos, full.patch_pos[ref_slots])


def test_window_equals_the_slice_of_the_full_stream(text):
    rng = np.random.default_rng(0)
    ep = _random_golden_episode(rng, 9)
    layout = EpisodeLayout(GOLDEN, TM, text)
    full = layout.steps(ep, 0, len(ep), with_bos=True)
    lengths = layout.step_lengths(ep)

    # per-step counts of the full stream: each step ends 2 action tokens after its separator
    seps = np.flatnonzero(full.kinds == K.SEPARATOR)
    ends = np.concatenate([[1], seps + 3])
    assert ends[-1] == len(full)
    np.testing.assert_array_equal(lengths, np.diff(ends))
    # and by hand: cell + 2 patches + mission + 2 pos, '|', button + torque
    np.testing.assert_array_equal(lengths, [1 + 2 + len(text.encode(o["mission"])) + 2 + 1 + 2
                                            for o in ep.observations])
    assert len(set(lengths.tolist())) > 1  # steps of different lengths

    total = len(full)
    pairs = [(s, n) for s in range(total) for n in (1, 2, int(lengths[0]), total)]
    pairs += [(int(s), int(n)) for s, n in zip(rng.integers(0, total, 200), rng.integers(1, total + 1, 200))]
    for start, size in pairs:
        win = layout.window(ep, lengths, start, size)
        _assert_same_positions(win, full, start, min(start + size, total))


# ------------------------------------------------------------------ documents, image-text

def test_document_layout():
    seq = document(np.array([5, 17, 0, V - 1]), TM)
    np.testing.assert_array_equal(seq.ids, [BOS, 5, 17, 0, V - 1])
    np.testing.assert_array_equal(seq.kinds, [K.BOS, K.TEXT, K.TEXT, K.TEXT, K.TEXT])
    np.testing.assert_array_equal(seq.loss_mask, [False, True, True, True, True])
    np.testing.assert_array_equal(seq.local_pos, [-1] * 5)
    assert len(seq.patches) == len(seq.patch_pos) == 0
    empty = document(np.array([], np.int64), TM)
    np.testing.assert_array_equal(empty.ids, [BOS])
    for bad in ([1, V], [-1, 3], [CONT + 1]):
        with pytest.raises(ValueError, match="text range"):
            document(np.array(bad), TM)


def test_image_text_layout():
    tall = _halves(255, 0)  # 32x16: two patches
    small = np.full((16, 16, 3), 255, np.uint8)  # one patch
    seq = image_text([(tall, np.array([7, 8])), (small, np.array([9]))], TM)
    np.testing.assert_array_equal(seq.ids, [BOS, 0, 1, 7, 8, 2, 9])
    np.testing.assert_array_equal(seq.kinds, [K.BOS, K.IMAGE, K.IMAGE, K.TEXT, K.TEXT, K.IMAGE, K.TEXT])
    np.testing.assert_array_equal(seq.loss_mask, [False, False, False, True, True, False, True])
    np.testing.assert_array_equal(seq.local_pos, [-1] * 7)
    for slot, value in enumerate([0.25, -0.25, 0.25]):
        np.testing.assert_allclose(seq.patches[slot], value)
    np.testing.assert_array_equal(seq.patches, np.concatenate([images.patchify(tall), images.patchify(small)]))
    np.testing.assert_array_equal(seq.patch_pos, [[0, 64, 0, 128], [64, 128, 0, 128], [0, 128, 0, 128]])
    for bad in ([1, V], [-1], [BOS]):
        with pytest.raises(ValueError, match="text range"):
            image_text([(small, np.array([3])), (small, np.array(bad))], TM)


# ------------------------------------------------------------------ slot renumbering

def _marked(pattern: str, first_mark: int) -> Sequence:
    """A sequence of 'I' (image) and 'T' (text) positions; patch k is filled with first_mark + k."""
    kinds = np.array([K.IMAGE if c == "I" else K.TEXT for c in pattern], np.uint8)
    img = kinds == K.IMAGE
    ids = np.full(len(pattern), 11, np.int64)
    ids[img] = np.arange(int(img.sum()))
    marks = first_mark + np.arange(int(img.sum()), dtype=np.float32)
    patches = np.broadcast_to(marks[:, None, None, None], (len(marks), 16, 16, 3)).copy()
    patch_pos = np.repeat(marks[:, None].astype(np.int16), 4, axis=1)
    return Sequence(ids, kinds, np.full(len(pattern), -1, np.int16), ~img, patches, patch_pos)


def _marks_in_order(seq: Sequence) -> list[float]:
    """The mark of the patch each image position uses, in position order (checks slot order)."""
    img = seq.kinds == K.IMAGE
    np.testing.assert_array_equal(seq.ids[img], np.arange(int(img.sum())))
    assert len(seq.patches) == len(seq.patch_pos) == int(img.sum())
    np.testing.assert_array_equal(seq.patch_pos[:, 0], seq.patches[:, 0, 0, 0])
    return seq.patches[:, 0, 0, 0].tolist()


def test_concat_and_slice_renumber_patch_slots():
    a, b, c = _marked("TIIT", 100), _marked("ITTTI", 200), _marked("IIIT", 300)
    cat = Sequence.concat([a, _marked("TT", 400), b, c])
    expected = [100, 101, 200, 201, 300, 301, 302]
    assert _marks_in_order(cat) == expected
    assert len(cat) == 4 + 2 + 5 + 4
    for start in range(len(cat) + 1):
        for stop in range(start, len(cat) + 1):
            part = cat.slice(start, stop)
            img = cat.kinds[start:stop] == K.IMAGE
            before = int((cat.kinds[:start] == K.IMAGE).sum())
            assert _marks_in_order(part) == expected[before:before + int(img.sum())]
            np.testing.assert_array_equal(part.ids[~img], cat.ids[start:stop][~img])
    # a slice of a slice, then concatenated again
    again = Sequence.concat([cat.slice(5, 12), cat.slice(0, 3)])
    assert _marks_in_order(again) == [200, 201, 300, 100, 101]


# ------------------------------------------------------------------ prompts and packing

E, T_STEPS = 6, 30
TAGGED = TaskSpec("test/tagged",
                  spaces.Dict({"ep": spaces.Discrete(E), "t": spaces.Discrete(T_STEPS)}),
                  spaces.Discrete(4))


def _tagged_episodes(steps: int = T_STEPS, n: int = E) -> list[Episode]:
    """Episode e's observations carry e (local position 0) and the step index."""
    return [Episode([{"ep": e, "t": t} for t in range(steps)], [(e + t) % 4 for t in range(steps)])
            for e in range(n)]


def _episode_ids(seq: Sequence) -> np.ndarray:
    return seq.ids[(seq.kinds == K.DISCRETE_OBS) & (seq.local_pos == 0)] - DISC


def _offset_in(part: Sequence, full: Sequence) -> int:
    """The unique offset at which `part` (no images) occurs in `full`."""
    n = len(part)
    hits = [s for s in range(len(full) - n + 1) if np.array_equal(full.ids[s:s + n], part.ids)]
    assert len(hits) == 1, hits
    s = hits[0]
    np.testing.assert_array_equal(part.kinds, full.kinds[s:s + n])
    np.testing.assert_array_equal(part.local_pos, full.local_pos[s:s + n])
    return s


def test_prompt_comes_from_another_episode_half_from_its_end():
    eps = _tagged_episodes()
    P, size = 20, 64
    src = ControlSource(TAGGED, eps, TM, prompt_prob=1.0, prompt_tokens=P)
    fulls = [src.layout.steps(ep, 0, len(ep), with_bos=True) for ep in eps]
    total = len(fulls[0])
    assert total == 1 + 4 * T_STEPS  # [ep, t, '|', action] per step
    rng = np.random.default_rng(1)
    n, at_end, prompt_eps = 400, 0, set()
    for _ in range(n):
        seq = src.sample(rng, size)
        assert len(seq) == size
        prompt, main = seq.slice(0, P), seq.slice(P, size)
        pe, me = _episode_ids(prompt), _episode_ids(main)
        assert len(pe) and len(me)
        j, i = int(pe[0]), int(me[0])
        assert (pe == j).all() and (me == i).all() and j != i
        prompt_eps.add(j)
        assert not prompt.loss_mask.any()
        s = _offset_in(prompt, fulls[j])
        at_end += s == total - P
        if s == total - P:
            assert prompt.kinds[-1] == K.DISCRETE_ACTION and prompt.ids[-1] == fulls[j].ids[-1]
        # the main window is an ordinary training window: loss on its action tokens
        m = _offset_in(main, fulls[i])
        np.testing.assert_array_equal(main.loss_mask, fulls[i].loss_mask[m:m + len(main)])
        assert main.loss_mask.any()
    assert prompt_eps == set(range(E))
    # half from the end (plus the uniform windows that happen to end there: 1 / (total - P + 1))
    assert abs(at_end / n - 0.5) < 0.1, at_end


def test_prompt_probability():
    eps = _tagged_episodes()
    rng = np.random.default_rng(2)

    def prompted(src, n):
        return [len(set(_episode_ids(src.sample(rng, 48)).tolist())) == 2 for _ in range(n)]

    never = ControlSource(TAGGED, eps, TM, prompt_prob=0.0, prompt_tokens=16)
    assert not any(prompted(never, 200))
    quarter = ControlSource(TAGGED, eps, TM, prompt_prob=0.25, prompt_tokens=16)
    frac = np.mean(prompted(quarter, 800))
    assert abs(frac - 0.25) < 0.07, frac  # binomial sd 0.015
    # a task with one episode has no other episode to prompt from
    alone = ControlSource(TAGGED, eps[:1], TM, prompt_prob=1.0, prompt_tokens=16)
    seq = alone.sample(rng, 48)
    assert len(seq) == 48 and seq.loss_mask.any()


def _segments(seq: Sequence) -> list[Sequence]:
    starts = np.flatnonzero(seq.kinds == K.BOS).tolist() + [len(seq)]
    return [seq.slice(a, b) for a, b in zip(starts[:-1], starts[1:])]


@pytest.mark.parametrize("prompt_prob", [0.0, 1.0])
def test_short_episodes_are_packed_each_from_its_start(prompt_prob):
    eps = _tagged_episodes(steps=3)
    size, ep_len = 64, 1 + 4 * 3
    src = ControlSource(TAGGED, eps, TM, prompt_prob=prompt_prob, prompt_tokens=16)
    fulls = [src.layout.steps(ep, 0, len(ep), with_bos=True) for ep in eps]
    rng = np.random.default_rng(3)
    for _ in range(30):
        seq = src.sample(rng, size)
        assert len(seq) == size
        assert seq.kinds[0] == K.BOS
        segs = _segments(seq)
        assert sum(map(len, segs)) == size and len(segs) == -(-size // ep_len)
        for k, seg in enumerate(segs):
            assert seg.kinds[0] == K.BOS
            if k < len(segs) - 1:
                assert len(seg) == ep_len  # whole episodes until the last, cut one
            e = int(_episode_ids(seg)[0])
            ref = fulls[e].slice(0, len(seg))
            np.testing.assert_array_equal(seg.ids, ref.ids)
            np.testing.assert_array_equal(seg.kinds, ref.kinds)
            prompt = prompt_prob == 1.0 and k == 0
            np.testing.assert_array_equal(seg.loss_mask, ref.loss_mask & (not prompt))
        if prompt_prob == 1.0:
            assert int(_episode_ids(segs[0])[0]) != int(_episode_ids(segs[1])[0])


def test_documents_and_captions_are_packed():
    docs = [np.arange(3) + 100 * d for d in range(5)]
    src = DocumentSource("docs", docs, TM)
    rng = np.random.default_rng(4)
    for _ in range(20):
        seq = src.sample(rng, 30)
        assert len(seq) == 30
        for seg in _segments(seq):
            assert seg.kinds[0] == K.BOS
            body = seg.ids[1:]
            d = int(body[0]) // 100
            np.testing.assert_array_equal(body, docs[d][:len(body)])
            assert seg.loss_mask[1:].all()
    pairs = [(np.full((16, 32, 3), 40 * i, np.uint8), np.array([i, i + 1])) for i in range(4)]
    caps = ImageTextSource("caps", pairs, TM, pairs_per_sequence=2)
    for _ in range(20):
        seq = caps.sample(rng, 25)  # an example is 1 + 2 * (2 + 2) = 9 positions
        assert len(seq) == 25
        assert [len(s) for s in _segments(seq)] == [9, 9, 7]
        img = seq.kinds == K.IMAGE
        np.testing.assert_array_equal(seq.ids[img], np.arange(int(img.sum())))
        assert len(seq.patches) == int(img.sum())
        np.testing.assert_array_equal(seq.loss_mask, seq.kinds == K.TEXT)


# ------------------------------------------------------------------ collate and mixture

def test_collate_pads_and_orders_patches_row_major(text):
    a = _marked("TIITI", 10)
    b = _marked("TT", 20)
    c = _marked("IIITTTI", 30)
    ep = _random_golden_episode(np.random.default_rng(5), 1)
    d = EpisodeLayout(GOLDEN, TM, text).steps(ep, 0, 1, with_bos=True)
    seqs = [a, b, c, d]
    length = max(map(len, seqs)) + 3
    batch = collate(seqs, length, TM)
    B = len(seqs)
    assert batch.ids.shape == batch.kinds.shape == batch.local_pos.shape == batch.loss_mask.shape == (B, length)
    assert batch.ids.dtype == torch.long and batch.loss_mask.dtype == torch.bool
    assert batch.num_tokens == sum(map(len, seqs))
    expected_patches = []
    for r, s in enumerate(seqs):
        n = len(s)
        pad = slice(n, length)
        assert (batch.kinds[r, pad] == K.PAD).all()
        assert (batch.ids[r, pad] == PAD).all()
        assert not batch.loss_mask[r, pad].any()
        assert (batch.local_pos[r, pad] == -1).all()
        img = s.kinds == K.IMAGE
        np.testing.assert_array_equal(batch.kinds[r, :n].numpy(), s.kinds)
        np.testing.assert_array_equal(batch.ids[r, :n].numpy(), np.where(img, PAD, s.ids))
        np.testing.assert_array_equal(batch.local_pos[r, :n].numpy(), s.local_pos)
        np.testing.assert_array_equal(batch.loss_mask[r, :n].numpy(), s.loss_mask)
        expected_patches += [s.patches[s.ids[t]] for t in np.flatnonzero(img)]
    n_img = int((batch.kinds == K.IMAGE).sum())
    assert len(batch.patches) == len(batch.patch_pos) == n_img == len(expected_patches)
    np.testing.assert_array_equal(batch.patches.numpy(), np.stack(expected_patches))
    marks = batch.patches[:5, 0, 0, 0].tolist()  # rows a then c, each in position order
    assert marks == [10, 11, 12, 30, 31]
    with pytest.raises(ValueError, match="does not fit"):
        collate(seqs, len(d) - 1, TM)


def _mixture_sources(text):
    image_task = ControlSource(GOLDEN, [_random_golden_episode(np.random.default_rng(s), 6) for s in range(3)],
                               TM, text, prompt_tokens=24)
    plain_task = ControlSource(TAGGED, _tagged_episodes(steps=8), TM, prompt_tokens=8)
    docs = DocumentSource("docs", [np.arange(n) % V for n in (5, 40, 90)], TM)
    return [image_task, plain_task, docs]


def test_mixture_batch_of_image_and_non_image_sources(text):
    mix = Mixture(_mixture_sources(text), TM, seed=0)
    seen = set()
    for _ in range(4):
        batch = mix.sample_batch(8, 48)
        assert batch.ids.shape == batch.kinds.shape == (8, 48)
        img = batch.kinds == K.IMAGE
        assert len(batch.patches) == len(batch.patch_pos) == int(img.sum())
        assert (batch.ids[img] == PAD).all()
        assert (batch.kinds != K.PAD).all()  # sources pack: no padding
        for row in batch.kinds:
            ks = set(row.tolist())
            seen.add("image" if K.IMAGE in ks else "text" if K.TEXT in ks else "plain")
        assert not (batch.loss_mask & ~torch.isin(batch.kinds, torch.tensor(TARGET_KINDS, dtype=torch.uint8))).any()
    assert seen == {"image", "text", "plain"}


def _doc_fraction(mix: Mixture, batches: int, B: int) -> float:
    rows = [K.TEXT in row.tolist() for _ in range(batches) for row in mix.sample_batch(B, 16).kinds]
    return float(np.mean(rows))


def test_mixture_weights(text):
    docs = DocumentSource("docs", [np.arange(50)], TM)
    ctrl = ControlSource(TAGGED, _tagged_episodes(), TM, prompt_prob=0.0)
    assert _doc_fraction(Mixture([docs, ctrl], TM, [1, 0], seed=1), 10, 16) == 1.0
    assert _doc_fraction(Mixture([docs, ctrl], TM, [0, 2], seed=1), 10, 16) == 0.0
    frac = _doc_fraction(Mixture([docs, ctrl], TM, [3, 1], seed=1), 30, 32)
    assert abs(frac - 0.75) < 0.06, frac  # binomial sd 0.014
    for bad in ([1], [1, 2, 3], [1, -1], [0, 0], [float("nan"), 1], [float("inf"), 1]):
        with pytest.raises(ValueError, match="weights"):
            Mixture([docs, ctrl], TM, bad)
    with pytest.raises(ValueError):
        Mixture([], TM)


def test_mixture_state_dict_resumes_the_same_batches(text):
    sources = _mixture_sources(text)
    mix = Mixture(sources, TM, seed=7)
    mix.sample_batch(4, 40)
    state = mix.state_dict()
    a = mix.sample_batch(4, 40)
    later = mix.sample_batch(4, 40)
    resumed = Mixture(_mixture_sources(text), TM, seed=12345)  # fresh objects, other seed
    resumed.load_state_dict(state)
    b = resumed.sample_batch(4, 40)
    fields = ("ids", "kinds", "local_pos", "loss_mask", "patches", "patch_pos")
    for f in fields:
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert not all(torch.equal(getattr(a, f), getattr(later, f)) for f in fields)
    mix.load_state_dict(state)  # rewinding the same mixture works too
    c = mix.sample_batch(4, 40)
    assert all(torch.equal(getattr(a, f), getattr(c, f)) for f in fields)


# ------------------------------------------------------------------ bad input

def _good_obs(cell=1):
    return {"pos": np.zeros(2, np.float32), "mission": "go", "image": np.zeros((32, 16, 3), np.uint8),
            "cell": cell}


def _good_act():
    return {"torque": np.zeros(1, np.float32), "button": 1}


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


BAD_OBSERVATIONS = {
    "image shape": _good_obs() | {"image": np.zeros((16, 16, 3), np.uint8)},
    "pos shape": _good_obs() | {"pos": np.zeros(3, np.float32)},
    "pos NaN": _good_obs() | {"pos": np.array([0.0, np.nan], np.float32)},
    "cell range": _good_obs(cell=5),
    "cell negative": _good_obs(cell=-1),
    "missing key": _without(_good_obs(), "mission"),
    "extra key": _good_obs() | {"speed": 1.0},
    "mission type": _good_obs() | {"mission": 3},
    "not a dict": [1, 2, 3],
}


@pytest.mark.parametrize("case", list(BAD_OBSERVATIONS))
def test_bad_observation_names_task_observation_and_step(text, case):
    ep = Episode([_good_obs(), _good_obs(), BAD_OBSERVATIONS[case]], [_good_act()] * 3)
    layout = EpisodeLayout(GOLDEN, TM, text)
    with pytest.raises(ValueError) as err:
        layout.steps(ep, 0, 3, with_bos=True)
    msg = str(err.value)
    assert "test/golden" in msg and "observation" in msg and "step 2" in msg, msg
    # the sampler (which first counts the steps' tokens) reports it the same way
    src = ControlSource(GOLDEN, [ep], TM, text, prompt_prob=0.0)
    with pytest.raises(ValueError) as err:
        src.sample(np.random.default_rng(0), 1000)
    msg = str(err.value)
    assert "test/golden" in msg and "observation" in msg and "step 2" in msg, msg


def test_bad_action_names_task_action_and_step(text):
    ep = Episode([_good_obs()] * 2, [_good_act(), {"torque": np.zeros(1, np.float32), "button": 3}])
    with pytest.raises(ValueError, match=r"test/golden: action at step 1"):
        EpisodeLayout(GOLDEN, TM, text).steps(ep, 0, 2, with_bos=False)


def test_episode_and_source_validation():
    with pytest.raises(ValueError, match="equal"):
        Episode([1, 2], [0])
    with pytest.raises(ValueError, match="equal"):
        Episode([1, 2], [0, 1], np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="no steps"):
        Episode([], [])
    assert len(Episode([1, 2], [0, 1])) == 2
    with pytest.raises(ValueError, match="test/tagged"):
        ControlSource(TAGGED, [], TM)
    with pytest.raises(ValueError, match="docs"):
        DocumentSource("docs", [], TM)
    with pytest.raises(ValueError, match="caps"):
        ImageTextSource("caps", [], TM)


def test_observation_longer_than_the_local_position_table(text):
    ep = Episode([_good_obs()], [_good_act()])
    n_obs = 1 + 2 + len(text.encode("go")) + 2
    fits = EpisodeLayout(GOLDEN, TM, text, max_local_positions=n_obs).steps(ep, 0, 1, with_bos=False)
    assert fits.local_pos.max() == n_obs - 1
    with pytest.raises(ValueError, match=rf"test/golden.*\b{n_obs - 1}\b"):
        EpisodeLayout(GOLDEN, TM, text, max_local_positions=n_obs - 1).steps(ep, 0, 1, with_bos=False)
    src = ControlSource(GOLDEN, [ep], TM, text, max_local_positions=n_obs - 1)
    with pytest.raises(ValueError, match=rf"\b{n_obs - 1}\b"):
        src.sample(np.random.default_rng(0), 64)


# ------------------------------------------------------------------ synthetic sources

_ID_RANGES = {
    K.BOS: (BOS, BOS + 1), K.SEPARATOR: (SEP, SEP + 1),
    K.TEXT: (0, V), K.TEXT_OBS: (0, V), K.TEXT_ACTION: (0, V),
    K.CONTINUOUS_OBS: (CONT, CONT + 1024), K.CONTINUOUS_ACTION: (CONT, CONT + 1024),
    K.DISCRETE_OBS: (DISC, DISC + 1024), K.DISCRETE_ACTION: (DISC, DISC + 1024),
}


def _assert_well_formed(seq: Sequence, max_local: int, control: bool):
    assert set(seq.kinds.tolist()) <= set(_ID_RANGES) | {K.IMAGE}
    for kind, (lo, hi) in _ID_RANGES.items():
        ids = seq.ids[seq.kinds == kind]
        assert ((ids >= lo) & (ids < hi)).all(), (Kind(kind).name, ids)
    img = seq.kinds == K.IMAGE
    np.testing.assert_array_equal(seq.ids[img], np.arange(int(img.sum())))
    assert seq.patches.shape == (int(img.sum()), 16, 16, 3) and seq.patch_pos.shape == (int(img.sum()), 4)
    if img.any():
        assert np.abs(seq.patches).max() <= 0.25
        assert seq.patch_pos.min() >= 0 and seq.patch_pos.max() <= 128
    assert not (seq.loss_mask & ~np.isin(seq.kinds, TARGET_KINDS)).any()
    # local positions on exactly the observation tokens of episodes (caption patches have none)
    obs = np.isin(seq.kinds, OBSERVATION_KINDS) if control else np.zeros(len(seq), bool)
    assert (seq.local_pos[~obs] == -1).all()
    assert ((seq.local_pos[obs] >= 0) & (seq.local_pos[obs] < max_local)).all()


def test_synthetic_sources_yield_well_formed_sequences(text):
    srcs = synthetic.sources(TM, text, episodes_per_task=4, prompt_tokens=32)
    assert len(srcs) == 5
    rng = np.random.default_rng(6)
    for src in srcs:
        has_loss = False
        for size in (1, 2, 17, 128, 300):
            for _ in range(3):
                seq = src.sample(rng, size)
                assert len(seq) == size, (src.name, size, len(seq))
                _assert_well_formed(seq, 512, isinstance(src, ControlSource))
                has_loss |= bool(seq.loss_mask.any())
                if not isinstance(src, ControlSource):
                    np.testing.assert_array_equal(seq.loss_mask, seq.kinds == K.TEXT)
        assert has_loss, src.name
    kinds = {src.name: set() for src in srcs}
    for src in srcs:
        kinds[src.name] |= set(src.sample(rng, 300).kinds.tolist())
    assert K.IMAGE in kinds["toy/find-square"] and K.TEXT_OBS in kinds["toy/find-square"]
    assert K.CONTINUOUS_ACTION in kinds["toy/track"] and K.DISCRETE_ACTION in kinds["toy/max-cell"]
    assert K.IMAGE in kinds["caption/squares"] and K.TEXT in kinds["caption/squares"]


def test_a_row_depends_only_on_seed_step_and_row(text):
    """What makes sharding by rank exact: rows drawn in any split equal the rows of the whole batch."""
    mix = Mixture(_mixture_sources(text), TM, seed=3)
    whole = mix.batch(5, range(6), 48)
    parts = [mix.batch(5, range(0, 2), 48), mix.batch(5, range(2, 6), 48)]
    for f in ("ids", "kinds", "local_pos", "loss_mask", "patches", "patch_pos"):
        assert torch.equal(getattr(whole, f), torch.cat([getattr(p, f) for p in parts])), f
    assert not torch.equal(mix.batch(6, range(6), 48).ids, whole.ids)  # another step, other rows
    assert mix.sample_batch(6, 48).ids.equal(mix.batch(0, range(6), 48).ids)  # the cursor is the step
    assert mix.state_dict() == {"seed": 3, "step": 1}
    with pytest.raises(ValueError, match="seed and step"):
        mix.load_state_dict({"rng": {}})


def test_training_patch_positions_are_one_slot_inside_the_patch_interval(text):
    """The random training index of a patch's row/column interval is drawn with the row's data."""
    from gato.tokenization.images import patch_positions

    mix = Mixture(_mixture_sources(text), TM, seed=0)
    batch = mix.batch(0, range(16), 48)
    pos = batch.patch_pos.long()
    assert len(pos) and (pos[:, 1] == pos[:, 0] + 1).all() and (pos[:, 3] == pos[:, 2] + 1).all()
    intervals = torch.from_numpy(patch_positions(2, 1)).long()  # GOLDEN's 32x16 images: 2x1 patches
    inside = [((p[0] >= iv[0]) & (p[0] < iv[1]) & (p[2] >= iv[2]) & (p[2] < iv[3])).item()
              for p in pos for iv in intervals]
    assert sum(inside) == len(pos)  # each drawn position lies in exactly one patch's interval
