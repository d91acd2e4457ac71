"""Tests for gato.training.checkpoint: exact round trips, atomic writes, clear errors, no partial loads."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from gato.training import checkpoint as ckpt
from gato.training.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    checkpoint_name,
    flatten_state,
    latest_checkpoint,
    load_meta,
    load_model_weights,
    load_state,
    load_weights,
    save_checkpoint,
    unflatten_state,
)


def assert_same(a, b, path="root"):
    """Deep equality that also requires identical container/scalar types and tensor dtypes."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}/{i}")
    elif isinstance(a, float) and a != a:
        assert b != b, path
    else:
        assert a == b, path


def by_key(tensors):
    """safetensors stores keys sorted; order of weights is irrelevant."""
    return dict(sorted(tensors.items()))


def trained_adamw(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.99))
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    return model, opt


def step(model, opt, x):
    opt.zero_grad()
    model(x).pow(2).sum().backward()
    opt.step()


def trainer_state(opt):
    gen = np.random.Generator(np.random.PCG64(1234))
    gen.random(3)
    return {
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": gen.bit_generator.state,
        "python_rng": random.Random(7).getstate(),
        "cursor": {"epoch": 3, "offsets": [0, 17, 42], "done": False},
    }


def json_round_trip(state):
    tensors, skeleton = flatten_state(state)
    skeleton = json.loads(json.dumps(skeleton))
    return unflatten_state({k: v.clone() for k, v in tensors.items()}, skeleton), tensors


def test_optimizer_and_rng_round_trip_resumes_exactly():
    model, opt = trained_adamw()
    state = trainer_state(opt)
    restored, tensors = json_round_trip(state)

    assert_same(restored, state)  # int keys, tuples (betas, python rng), None, bools, big ints all preserved
    assert "optimizer/state/0/exp_avg" in tensors
    assert state["numpy_rng"]["state"]["state"] > 2**64  # 128-bit PCG64 ints survive JSON

    twin = copy.deepcopy(model)
    twin_opt = torch.optim.AdamW(twin.parameters(), lr=0.5)
    twin_opt.load_state_dict(restored["optimizer"])
    x = torch.randn(5, 4)
    step(model, opt, x)
    step(twin, twin_opt, x)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)

    torch.set_rng_state(restored["torch_rng"])
    expected = torch.rand(4)
    torch.set_rng_state(state["torch_rng"])
    assert torch.equal(torch.rand(4), expected)
    gen = np.random.Generator(np.random.PCG64())
    gen.bit_generator.state = restored["numpy_rng"]
    ref = np.random.Generator(np.random.PCG64())
    ref.bit_generator.state = state["numpy_rng"]
    assert np.array_equal(gen.random(5), ref.random(5))
    r = random.Random()
    r.setstate(restored["python_rng"])
    assert r.random() == random.Random(7).random()


def test_tricky_values_round_trip():
    state = {
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3)[:, ::2],  # non-contiguous
        "arr0d": np.array(2.5),
        "arr_u64": np.array([2**64 - 1], dtype=np.uint64),
        "np_scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.float64(0.1)],
        "floats": [float("inf"), float("nan"), -0.0, 1e-300],
        "looks_like_marker": {"__tensor__": "x", "__tuple__": [1]},
        "mixed_keys": {1: "a", "1": "b", 2: torch.ones(1)},
        "a/b": torch.ones(2),
        "a": {"b": torch.zeros(2)},  # same path "a/b" as the key above: must not collide
        "tuple_of_tuples": ((1, 2), (), [None]),
        "empty": {},
        "bf16": torch.randn(3, dtype=torch.bfloat16),
    }
    restored, tensors = json_round_trip(state)
    assert_same(restored, state)
    assert len(tensors) == 7


def test_root_tensor_and_unsupported_values():
    restored, _ = json_round_trip(torch.arange(3))
    assert torch.equal(restored, torch.arange(3))
    with pytest.raises(CheckpointError, match=r"cursor/fn.*function"):
        flatten_state({"cursor": {"fn": lambda: 0}})
    with pytest.raises(CheckpointError, match="dict key"):
        flatten_state({"x": {(1, 2): 3}})
    with pytest.raises(CheckpointError, match="missing"):
        unflatten_state({}, {"__tensor__": "gone"})


def save_example(directory: Path, scale: float = 1.0, state=None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    weights = {
        "embed.weight": torch.randn(10, 4) * scale,
        "head.bias": torch.zeros(3, dtype=torch.bfloat16),
        "steps": torch.tensor([1, 2], dtype=torch.int64),
    }
    weights["head.weight"] = weights["embed.weight"]  # tied weights share storage
    save_checkpoint(directory, weights=weights, meta={"model": {"d": 4}, "step": 42}, state=state)
    return weights


def test_save_and_load_round_trip(tmp_path):
    _, opt = trained_adamw()
    state = trainer_state(opt)
    target = tmp_path / "run" / checkpoint_name(42)
    weights = save_example(target, state=state)

    assert sorted(os.listdir(target)) == ["config.json", "model.safetensors", "state.json", "state.safetensors"]
    assert os.listdir(tmp_path / "run") == [target.name]
    assert_same(load_weights(target), by_key(weights))
    assert_same(load_state(target), state)
    assert load_meta(target) == {"model": {"d": 4}, "step": 42}
    config = json.loads((target / "config.json").read_text())
    assert (config["format"], config["version"]) == (FORMAT, VERSION)

    new = save_example(target, scale=2.0)  # overwrite, this time without trainer state
    assert_same(load_weights(target), by_key(new))
    assert not (target / "state.json").exists()
    with pytest.raises(CheckpointError, match="state.json"):
        load_state(target)
    assert os.listdir(tmp_path / "run") == [target.name]


def test_reserved_meta_keys(tmp_path):
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "c", weights={}, meta={"version": 3})


def fail_on_state_write(monkeypatch):
    real = ckpt.save_file

    def fake(tensors, filename, metadata=None):
        if Path(filename).name == "state.safetensors":
            raise OSError("disk full")
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", fake)


def test_failed_write_leaves_no_checkpoint(tmp_path, monkeypatch):
    fail_on_state_write(monkeypatch)
    target = tmp_path / checkpoint_name(1)
    with pytest.raises(OSError, match="disk full"):
        save_example(target, state={"x": torch.ones(1)})
    assert not target.exists()
    assert os.listdir(tmp_path) == []
    assert latest_checkpoint(tmp_path) is None


def test_failed_overwrite_keeps_old_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / checkpoint_name(1)
    old = save_example(target)
    fail_on_state_write(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save_example(target, scale=3.0, state={"x": torch.ones(1)})
    assert_same(load_weights(target), by_key(old))
    assert os.listdir(tmp_path) == [target.name]


def test_failed_swap_restores_old_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / checkpoint_name(1)
    old = save_example(target)
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(Path(src).name)
        if len(calls) == 2:  # moving the new folder into place
            raise OSError("rename failed")
        real(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", flaky)
    with pytest.raises(OSError, match="rename failed"):
        save_example(target, scale=3.0)
    monkeypatch.undo()
    assert_same(load_weights(target), by_key(old))
    assert os.listdir(tmp_path) == [target.name]


def test_killed_job_temp_folder_is_ignored(tmp_path):
    save_example(tmp_path / checkpoint_name(3))
    save_example(tmp_path / (checkpoint_name(9) + ".tmp-12345"))  # complete-looking, but never renamed
    assert latest_checkpoint(tmp_path) == tmp_path / checkpoint_name(3)


def test_corrupt_weights_files(tmp_path):
    target = tmp_path / checkpoint_name(1)
    save_example(target)
    path = target / "model.safetensors"
    data = path.read_bytes()

    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated or corrupt"):
        load_weights(target)
    path.write_bytes(b"\x00garbage bytes\xff" * 64)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated or corrupt"):
        load_weights(target)
    safetensors.torch.save_file({"w": torch.ones(2)}, str(path))  # no format metadata
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*not a gato checkpoint"):
        load_weights(target)
    path.unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_weights(target)


def test_a_flipped_byte_in_the_weights_is_named(tmp_path):
    target = tmp_path / checkpoint_name(1)
    save_example(target)
    path, config_file = target / "model.safetensors", target / "config.json"
    config = json.loads(config_file.read_text())
    assert config["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "weights_sha256" not in load_meta(target)  # the format's, like "version"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the last tensor: the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: sha256 .* recorded in {config_file}"):
        load_weights(target)
    del config["weights_sha256"]  # written before checksums: loads unchecked
    config_file.write_text(json.dumps(config))
    load_weights(target)


def test_the_shipped_checkpoint_records_and_passes_its_checksum():
    """(A checkpoint from before checksums loads unchecked: the test above.)"""
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"
    assert "weights_sha256" in json.loads((shipped / "config.json").read_text())
    assert load_weights(shipped)


def test_corrupt_state_files(tmp_path):
    target = tmp_path / checkpoint_name(1)
    save_example(target, state={"x": torch.ones(3), "n": 1})
    (target / "state.safetensors").write_bytes(b"xx")
    with pytest.raises(CheckpointError, match=r"state\.safetensors.*truncated or corrupt"):
        load_state(target)
    (target / "state.json").write_text('{"format": "gato-checkpoint", "ver')
    with pytest.raises(CheckpointError, match=r"state\.json.*invalid or truncated JSON"):
        load_state(target)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format": "gato-checkpoint", "version": 1', "invalid or truncated JSON"),
        ('{"format": "someone-else", "version": 1}', "not a gato checkpoint"),
        ('{"version": 1}', "not a gato checkpoint"),
        ("[1, 2]", "not a gato checkpoint"),
        (f'{{"format": "gato-checkpoint", "version": {VERSION + 1}}}', "unsupported checkpoint version"),
    ],
)
def test_bad_config(tmp_path, text, message):
    target = tmp_path / checkpoint_name(1)
    save_example(target)
    (target / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=rf"config\.json.*{message}"):
        load_meta(target)


def test_missing_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    for load in (load_meta, load_weights, load_state):
        with pytest.raises(CheckpointError, match=f"{missing}.*does not exist"):
            load(missing)


def test_expected_mismatch_lists_keys_and_shapes(tmp_path):
    target = tmp_path / checkpoint_name(1)
    weights = save_example(target)
    expected = {k: torch.empty_like(v) for k, v in weights.items()}
    assert load_weights(target, expected=expected).keys() == weights.keys()

    expected["embed.weight"] = torch.empty(12, 4)
    expected["head.bias"] = torch.empty(3)  # float32 vs saved bfloat16
    del expected["steps"]
    expected["extra.weight"] = torch.empty(1)
    with pytest.raises(CheckpointError) as err:
        load_weights(target, expected=expected)
    msg = str(err.value)
    assert "model.safetensors" in msg
    assert "missing keys (1): extra.weight" in msg
    assert "unexpected keys (1): steps" in msg
    assert "embed.weight: expected (12, 4) torch.float32, got (10, 4) torch.float32" in msg
    assert "head.bias: expected (3,) torch.float32, got (3,) torch.bfloat16" in msg

    many = {f"layer{i}.weight": torch.empty(1) for i in range(7)}
    with pytest.raises(CheckpointError, match=r"missing keys \(8\): extra\.weight, layer0\.weight, .*layer3\.weight \(and 3 more\)"):
        load_weights(target, expected={**expected, **many})


def test_failed_model_load_is_not_partial(tmp_path):
    torch.manual_seed(0)
    saved = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    save_checkpoint(tmp_path / "c", weights=saved.state_dict(), meta={})
    other = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 5))  # first layer fits, second does not
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(CheckpointError, match=r"1\.weight: expected \(5, 4\).*got \(3, 4\)"):
        load_model_weights(other, tmp_path / "c")
    assert_same(other.state_dict(), before)

    same = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    load_model_weights(same, tmp_path / "c")
    assert_same(same.state_dict(), saved.state_dict())


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path / "absent") is None
    assert latest_checkpoint(tmp_path) is None
    for s in (5, 12, 7):
        save_example(tmp_path / checkpoint_name(s))
    save_example(tmp_path / checkpoint_name(20))
    (tmp_path / checkpoint_name(20) / "config.json").unlink()  # incomplete: no config.json
    (tmp_path / checkpoint_name(40)).write_text("a file, not a folder")
    save_example(tmp_path / "step_99")  # wrong pattern
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000012"
    save_example(tmp_path / checkpoint_name(123_456_789))  # more than 8 digits still sorts numerically
    assert latest_checkpoint(tmp_path) == tmp_path / "step_123456789"


def test_checkpoint_name():
    assert checkpoint_name(42) == "step_00000042"
    assert checkpoint_name(0) == "step_00000000"
    with pytest.raises(ValueError):
        checkpoint_name(-1)
