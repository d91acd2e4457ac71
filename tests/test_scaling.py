"""Planning arithmetic (gato/scaling.py), `gato scaling` and the benches built on it: FLOPs, MFU, memory."""

from __future__ import annotations

import json

import pytest

from gato import scaling
from gato.commands.bench.memory import bench_memory
from gato.commands.bench.training import bench_train
from gato.commands.model import scaling as scaling_command
from gato.config import get_preset


def test_flops_per_token_by_hand():
    cfg = get_preset("gato-tiny")
    _, blocks = scaling.param_counts(cfg)
    # per block: qkv 192x576, proj 192x192, GEGLU fc 192x1024 (+bias), proj 512x192 (+bias), two LayerNorms
    assert blocks == 4 * (192 * 576 + 192 * 192 + 192 * 1024 + 1024 + 512 * 192 + 192 + 2 * 2 * 192)
    f = scaling.flops_per_token(cfg, 128, target_share=0.5)
    assert f == 6 * blocks + 6 * cfg.vocab_size * 192 * 0.5 + 12 * 4 * 6 * 32 * 128


def test_peak_table_matches_device_names():
    assert scaling.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert scaling.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert scaling.peak_flops("NVIDIA H200") == 989e12
    assert scaling.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert scaling.peak_flops("Tesla T4") is None


def test_bench_train_reports_mfu_against_a_given_peak(capsys):
    r = bench_train(batch_size=1, context=64, rounds=1, steps_per_round=1, loader_workers=0, peak_tflops=2.0,
                    device="cpu", json=True)
    want = r["tokens_per_s"] * scaling.flops_per_token(get_preset("gato-tiny"), 64, r["target_share"]) / 2e12
    assert r["peak_flops"] == 2e12 and r["mfu"] == pytest.approx(want, rel=0.01, abs=1e-4)
    assert 0 < r["target_share"] < 1 and r["loader_workers"] == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mfu"] == r["mfu"]
    assert bench_train(batch_size=1, context=64, rounds=1, steps_per_round=1, loader_workers=0, device="cpu")["mfu"] is None


def test_activation_estimate_terms():
    cfg = get_preset("gato-79m")
    base = scaling.activation_bytes(cfg, 1024, target_share=0.0)
    # the T x T attention matrices of the math kernel: 13 bytes per pair, per head and layer
    assert scaling.activation_bytes(cfg, 1024, target_share=0.0, flash=False) - base == 13 * 24 * 1024 ** 2 * 8
    assert scaling.activation_bytes(cfg, 1024, target_share=1.0) - base == 1024 * cfg.vocab_size * 10
    assert scaling.activation_bytes(cfg, 1024, checkpointing=True) < scaling.activation_bytes(cfg, 1024) / 1.5


def test_plan_hours_follow_from_flops_and_peak():
    rows = scaling.plan("H100", 0.4, gpus=(8, 64))
    assert [r["preset"] for r in rows] == ["gato-79m", "gato-364m", "gato-1.18b"]
    big = rows[-1]
    f = scaling.flops_per_token(get_preset("gato-1.18b"), 1024, 0.5)
    assert big["tokens"] == 512 * 1024 * 1_000_000
    assert big["per_gpu"][8]["hours"] == pytest.approx(big["tokens"] * f / (8 * 989e12 * 0.4) / 3600)
    assert big["per_gpu"][64]["hours"] == pytest.approx(big["per_gpu"][8]["hours"] / 8)
    assert big["parallel"] == "fsdp" and big["per_gpu"][64]["state_gb"] < big["per_gpu"][8]["state_gb"]
    for r in rows:
        for g, p in r["per_gpu"].items():  # the micro-batches of a step make up the GPU's share of 512
            assert p["micro_batch"] * p["grad_accum"] == 512 // g
    with pytest.raises(ValueError, match="no bf16 peak known for GPU 'TPU'"):
        scaling.plan("TPU")


def test_scaling_from_a_measured_bench(tmp_path, capsys):
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps({"bench": "train", "preset": "gato-79m", "mfu": 0.3, "date": "2026-11-21",
                                 "machine": {"gpu": "NVIDIA H200"}}))
    rows = scaling_command(bench=bench, gpus=(8,))
    assert "NVIDIA H200 at 30% MFU (measured: gato-79m" in capsys.readouterr().out
    assumed = scaling.plan("H200", 0.3, gpus=(8,))
    assert rows[0]["per_gpu"][8]["hours"] == pytest.approx(assumed[0]["per_gpu"][8]["hours"])
    bench.write_text(json.dumps({"bench": "train", "preset": "gato-tiny", "mfu": None, "machine": {}}))
    with pytest.raises(ValueError, match="measured on a GPU"):
        scaling_command(bench=bench)


def test_bench_memory_falls_back_to_the_estimate():
    r = bench_memory(presets=("gato-1.18b",), measure_below_gb=1.0, device="cpu")["presets"]["gato-1.18b"]
    cfg = get_preset("gato-1.18b")
    assert r["how"] == "analytic"
    # fp32 on CPU, activation checkpointing (auto for this preset), attention dropout without flash kernels
    acts = scaling.activation_bytes(cfg, bf16=False, checkpointing=True, flash=False)
    assert r["train_peak_bytes"] == int(scaling.state_bytes(cfg) + acts)
    assert r["train_peak_bytes"] > 16 * 1.18e9  # weights, gradients and AdamW moments in fp32


@pytest.mark.slow
def test_bench_memory_measures_a_preset():
    r = bench_memory(presets=("gato-tiny",), device="cpu")["presets"]["gato-tiny"]
    assert r["how"] == "measured"
    assert r["train_peak_bytes"] > 16 * 3.2e6 and r["act_peak_bytes"] > 4 * 3.2e6
