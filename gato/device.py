"""One `--device` convention for every command: auto (CUDA when there is one, else the CPU),
cpu, cuda or cuda:N, checked before any work so a typo or a missing GPU is one clear line."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """auto, cpu, cuda or cuda:N -> a device, with an error naming the option before any work."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"--device {device!r}: expected auto, cpu or cuda (cuda:N for one of several GPUs)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available (torch.cuda.is_available() is False)")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices")
    return torch.device(device)
