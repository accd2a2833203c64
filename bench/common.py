"""Shared benchmark plumbing: machine header, interleaved timing with medians, conv peak, PASS/MISS lines.

Every benchmark times its baseline and candidate in one process, alternating repetitions (A B A B ...) so a burst of
load from another process hits both, and reports medians; ratios, not absolute times, are what they check.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "conv_case",
    "conv_peak",
    "header",
    "interleaved",
    "median",
    "paired_ratio",
    "psnr_db",
    "spread",
    "sync",
    "verdict",
    "wait_quiet",
]


def _cpu_model() -> str:
    from pipeline.train import cpu_model

    return cpu_model()


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _onednn_version() -> str:
    match = re.search(r"MKL-DNN (v[\d.]+)", torch.__config__.show())
    return match.group(1) if match else "?"


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
        "onednn": _onednn_version(),
        "cpu_bf16": sorted(f for f in flags if f in {"avx512_bf16", "amx_bf16", "amx_tile", "avx512f"}),
        "device": str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})",
        "loadavg": os.getloadavg(),
    }
    print(f"== {title} ==")
    print(f"date {info['date']} | cpu {info['cpu']} ({info['cores']} cores, torch threads {info['threads']})")
    print(f"torch {info['torch']} | oneDNN {info['onednn']} | cpu flags {info['cpu_bf16']} | device {info['device']}")
    print(f"load average before start: {' '.join(f'{v:.2f}' for v in info['loadavg'])}")
    return info


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _busy_seconds() -> float:
    """CPU seconds all processes on the machine have spent busy since boot (``/proc/stat``), or 0 where unknown."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def wait_quiet(max_foreign: float, patience: float, window: float = 1.0) -> float:
    """Sleep until other processes use at most ``max_foreign`` cores over a ``window``-second sample, or until
    ``patience`` seconds have passed; return the last sampled foreign load (this process is idle meanwhile)."""
    deadline = time.perf_counter() + patience
    while True:
        busy0, own0 = _busy_seconds(), _own_seconds()
        time.sleep(window)
        foreign = max(0.0, (_busy_seconds() - busy0) - (_own_seconds() - own0)) / window
        if foreign <= max_foreign or time.perf_counter() >= deadline:
            return foreign


def interleaved(
    cases: dict[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
    max_foreign: float = 0.25,
    retries: int = 1,
    patience: float | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each case: ``warmup`` untimed rounds, then ``repeats`` rounds of A, B, ... in turn.

    The machine is shared, so each round also measures *foreign* load: CPU cores' worth of work done by other
    processes while it ran. A round with more than ``max_foreign`` cores of foreign load is run again, up to
    ``retries`` times, keeping the least disturbed attempt; before each attempt it waits up to ``patience`` seconds
    (default: env ``BENCH_PATIENCE`` or 20) for the machine to be quiet. A summary line says how disturbed the kept
    rounds were.
    """
    device = device or torch.device("cpu")
    if patience is None:
        patience = float(os.environ.get("BENCH_PATIENCE", "20"))
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    foreign_kept = []
    for r in range(repeats):
        order = list(cases.items())
        if r % 2:
            order.reverse()  # A B, B A, ...: neither case always runs right after the other
        best: tuple[float, dict[str, float]] | None = None
        for _ in range(retries + 1):
            if patience > 0:
                wait_quiet(max_foreign, patience)
            busy0, own0, wall0 = _busy_seconds(), _own_seconds(), time.perf_counter()
            got = {}
            for name, fn in order:
                t = time.perf_counter()
                fn()
                sync(device)
                got[name] = time.perf_counter() - t
            wall = time.perf_counter() - wall0
            foreign = max(0.0, (_busy_seconds() - busy0) - (_own_seconds() - own0)) / wall
            if best is None or foreign < best[0]:
                best = (foreign, got)
            if foreign <= max_foreign:
                break
        foreign_kept.append(best[0])
        for name, sec in best[1].items():
            times[name].append(sec)
    disturbed = sum(f > max_foreign for f in foreign_kept)
    print(
        f"  [foreign load during the {repeats} kept rounds: median {median(foreign_kept):.2f} cores, "
        f"max {max(foreign_kept):.2f}; {disturbed} round(s) above {max_foreign} after {retries} retries]"
    )
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


def conv_case(
    dtype: torch.dtype, device: torch.device, *, channels: int = 256, size: int = 128
) -> tuple[Callable[[], object], int]:
    """A large 3x3 convolution (1 x C x S x S -> C, channels_last) and its FLOPs: the machine's practical peak.

    Time it inside the same interleaved rounds as the model, so both see the same load.
    """
    x = torch.randn(1, channels, size, size, device=device).contiguous(memory_format=torch.channels_last).to(dtype)
    w = torch.randn(channels, channels, 3, 3, device=device).contiguous(memory_format=torch.channels_last).to(dtype)
    return (lambda: F.conv2d(x, w, padding=1)), 2 * channels * channels * 9 * size * size


def conv_peak(dtype: torch.dtype, device: torch.device, *, repeats: int = 7) -> float:
    """Best GFLOP/s of :func:`conv_case` over ``repeats`` runs."""
    fn, flops = conv_case(dtype, device)
    with torch.inference_mode():
        t = interleaved({"conv": fn}, repeats=repeats, warmup=2, device=device)
    return flops / min(t["conv"]) / 1e9


def paired_ratio(times: dict[str, list[float]], slow: str, fast: str) -> tuple[float, float]:
    """Speed-up of ``fast`` over ``slow``: the median of per-round ratios (robust to load that comes and goes, since
    the two runs of a round are adjacent) and the ratio of the best times (the uncontended estimate)."""
    rounds = [a / b for a, b in zip(times[slow], times[fast], strict=True)]
    return median(rounds), min(times[slow]) / min(times[fast])
