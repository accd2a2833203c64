"""Shared benchmark plumbing: machine header, interleaved timing with medians, conv peak, PASS/MISS lines.

Every benchmark times its baseline and candidate in one process, alternating repetitions (A B A B ...) so a burst of
load from another process hits both, and reports medians; ratios, not absolute times, are what they check.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F


__all__ = ["conv_peak", "header", "interleaved", "median", "psnr_db", "sync", "verdict"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def header(title: str, device: torch.device) -> dict:
    """Print and return what the numbers depend on: date, CPU/GPU, cores, threads, torch and oneDNN versions."""
    flags = _cpu_flags()
    info = {
        "benchmark": title,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn": torch.backends.mkldnn.version() if hasattr(torch.backends.mkldnn, "version") else "?",
        "cpu_bf16": sorted(f for f in flags if f in {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f"}),
        "device": str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})",
        "loadavg": os.getloadavg(),
    }
    print(f"== {title} ==")
    print(f"date {info['date']} | cpu {info['cpu']} ({info['cores']} cores, torch threads {info['threads']})")
    print(f"torch {info['torch']} | oneDNN {info['onednn']} | cpu bf16 flags {info['cpu_bf16']} | device {info['device']}")
    print(f"load average before start: {' '.join(f'{v:.2f}' for v in info['loadavg'])}")
    return info


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    cases: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1, device: torch.device | None = None
) -> dict[str, list[float]]:
    """Seconds per call of each case: ``warmup`` untimed rounds, then ``repeats`` rounds of A, B, ... in turn."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        order = list(cases.items())
        if r % 2:
            order.reverse()  # A B, B A, ...: neither case always runs right after the other
        for name, fn in order:
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """``median (min..max, n)`` as text, to show noise next to every figure."""
    return f"{median(values):.4f}s (min {min(values):.4f}, max {max(values):.4f}, n={len(values)})"


def verdict(name: str, value: float, target: float, *, higher_is_better: bool, unit: str = "") -> bool:
    """Print a ``PASS``/``MISS`` line for ``value`` against ``target`` and return whether it passed."""
    ok = value >= target if higher_is_better else value <= target
    op = ">=" if higher_is_better else "<="
    print(f"{'PASS' if ok else 'MISS'}  {name}: {value:.3f}{unit} (target {op} {target}{unit})")
    return ok


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB, peak 1) between two float images, computed in float64 without quantisation."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse, dtype=torch.float64)).item()


def conv_peak(
    dtype: torch.dtype, device: torch.device, *, channels: int = 256, size: int = 128, repeats: int = 7
) -> float:
    """Measured GFLOP/s of a large 3x3 convolution (1 x C x S x S -> C, channels_last): the machine's practical peak."""
    x = torch.randn(1, channels, size, size, device=device).contiguous(memory_format=torch.channels_last).to(dtype)
    w = torch.randn(channels, channels, 3, 3, device=device).contiguous(memory_format=torch.channels_last).to(dtype)
    flops = 2 * channels * channels * 9 * size * size
    with torch.inference_mode():
        t = interleaved({"conv": lambda: F.conv2d(x, w, padding=1)}, repeats=repeats, warmup=2, device=device)
    return flops / min(t["conv"]) / 1e9
