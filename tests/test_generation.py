"""Text generation: cached == recomputed, text ids only, EOS stops, long outputs slide."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gato.generation import generate, image_prompt, text_prompt

from conftest import SMALL, small_model

TM = SMALL.token_map


def prompts():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return [text_prompt(np.array([5, 6, 7, 8, 9]), TM),
            image_prompt(image, np.array([11, 12]), TM),
            text_prompt(np.array([40]), TM)]


def test_cached_equals_recomputed_and_rows_are_independent():
    m = small_model()
    cached = generate(m, prompts(), 20)
    fresh = generate(m, prompts(), 20, use_cache=False)
    for a, b in zip(cached, fresh):
        np.testing.assert_array_equal(a, b)
    alone = generate(m, prompts()[1:2], 20)  # a row's output does not depend on its batch neighbours
    np.testing.assert_array_equal(alone[0], cached[1])


def test_only_text_ids_are_generated_even_when_others_score_higher():
    m = small_model()
    with torch.no_grad():  # make every non-text id far more likely than any text id
        m.embed.weight[SMALL.text_vocab:] *= 50
    out = generate(m, prompts(), 10, temperature=1.0, generator=torch.Generator().manual_seed(0))
    for ids in out:
        assert len(ids) == 10 and ids.min() >= 0 and ids.max() < SMALL.text_vocab


def test_eos_stops_each_row():
    m = small_model()
    first = [int(ids[0]) for ids in generate(m, prompts(), 1)]
    out = generate(m, prompts(), 10, eos_id=first[0])
    assert len(out[0]) == 0  # its first token is EOS
    assert all(int(t) != first[0] for ids in out for t in ids)


def test_generation_runs_past_the_context():
    """Three contexts' worth of tokens: the cached path (which re-encodes its window when full)
    gives the tokens of recomputing the window for every token, text ids only."""
    m = small_model()
    out = generate(m, prompts(), 3 * SMALL.context)
    fresh = generate(m, prompts(), 3 * SMALL.context, use_cache=False)
    assert [len(o) for o in out] == [3 * SMALL.context] * 3
    for a, b in zip(out, fresh):
        np.testing.assert_array_equal(a, b)
        assert a.min() >= 0 and a.max() < SMALL.text_vocab


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(small_model(), prompts(), 0)
    with pytest.raises(ValueError, match="empty"):
        generate(small_model(), [], 5)
