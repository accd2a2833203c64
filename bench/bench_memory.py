"""Peak memory of restoring one 1280x720 frame with hinet-2x-deep: tiled (256, batch 1 and 8) against untiled.

Run: ``python bench/bench_memory.py [--model hinet-2x-deep --height 720 --width 1280 --complete --limit-gib 16]``.
Each case runs in a fresh child process and reports its peak resident set (``VmHWM`` from ``/proc/self/status``), so
torch's allocator, oneDNN scratch space and autocast's weight copies are all counted; a ``model only`` child (weights
built and prepared, nothing run) gives the baseline that is subtracted to get the activation memory. Untiled is one
whole-image forward through the same path (the Restorer with a tile as large as the frame). By default the tiled
cases run only the first batch of their tile plan (all batches have the same shape, so the peak is reached there);
``--complete`` restores the whole frame. The parent kills a child whose RSS passes ``--limit-gib``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import header

from pipeline.config import TTAConfig
from pipeline.device import resolve_precision
from pipeline.inference import Restorer
from pipeline.models import count_macs, create_model
from pipeline.tiling import Tiler, tile_patches

CASES = ("model only", "tiled batch 1", "tiled batch 8", "untiled")
GIB = 2**30


def _status_kib(field: str, pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/{pid}/status")


def child(case: str, model_name: str, height: int, width: int, complete: bool) -> None:
    """Run one case in this (fresh) process and print a JSON line with its peak RSS and timings."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = create_model(model_name).eval().to(memory_format=torch.channels_last)
    img = torch.rand(1, 3, height, width)
    built = _status_kib("VmRSS")
    t1 = time.perf_counter()
    if case.startswith("tiled"):
        batch = int(case.rsplit(" ", 1)[1])
        if complete:
            Restorer(model, TTAConfig(tile=256, overlap=32, batch=batch)).restore(img, ("plain",))
        else:
            tiler = Tiler(model, overlap=32, batch=batch, dtype=resolve_precision("auto", "cpu"), channels_last=True)
            with torch.inference_mode():
                tiler.accumulate(img, {"tiles": tiler.tiles(height, width)[:batch]})
    elif case == "untiled":
        Restorer(model, TTAConfig(tile=max(height, width), overlap=0, batch=1)).restore(img, ("plain",))
    elif case != "model only":
        raise ValueError(f"unknown case {case!r}; choose from {CASES}")
    result = {
        "case": case,
        "peak_kib": _status_kib("VmHWM"),
        "built_kib": built,
        "build_s": t1 - t0,
        "run_s": time.perf_counter() - t1,
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_case(case: str, args) -> dict:
    """Start a child for ``case``, kill it if its RSS passes the limit, and return its result."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--model",
        args.model,
        "--height",
        str(args.height),
        "--width",
        str(args.width),
    ] + (["--complete"] if args.complete else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    worst = 0
    while proc.poll() is None:
        try:
            worst = max(worst, _status_kib("VmRSS", str(proc.pid)))
        except (OSError, RuntimeError):
            pass
        if worst > args.limit_gib * GIB / 1024:
            proc.kill()
            proc.wait()
            return {"case": case, "killed": True, "peak_kib": worst}
        time.sleep(0.2)
    out = proc.stdout.read()
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"case {case!r} failed (exit {proc.returncode}): {out[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hinet-2x-deep")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    ap.add_argument("--complete", action="store_true", help="tiled cases restore the whole frame, not one batch")
    ap.add_argument("--limit-gib", type=float, default=16.0, help="kill a case whose RSS passes this")
    ap.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.model, args.height, args.width, args.complete)
        return

    header(
        f"peak memory, {args.model} on {args.height}x{args.width} (default path: bf16 autocast + channels_last)",
        torch.device("cpu"),
    )
    model = create_model(args.model, device="meta")
    print(
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
        f"{count_macs(model, (args.height, args.width)) / 1e12:.2f} TMACs untiled, "
        f"{len(tile_patches(args.height, args.width, 256, 32))} tiles of 256 (overlap 32)"
    )
    results = {}
    for case in args.cases:
        r = results[case] = run_case(case, args)
        if r.get("killed"):
            print(f"  {case:14s} KILLED at RSS {r['peak_kib'] / 2**20:.2f} GiB (limit {args.limit_gib} GiB)")
            continue
        print(
            f"  {case:14s} peak RSS {r['peak_kib'] / 2**20:6.2f} GiB  (after build {r['built_kib'] / 2**20:.2f} GiB, "
            f"build {r['build_s']:.1f}s, run {r['run_s']:.1f}s)",
            flush=True,
        )
    base = results.get("model only")
    if base and not base.get("killed"):
        print("activation memory (peak - model-only peak):")
        for case, r in results.items():
            if case != "model only" and not r.get("killed"):
                print(f"  {case:14s} {(r['peak_kib'] - base['peak_kib']) / 2**20:6.2f} GiB")
    if "untiled" in results and not results["untiled"].get("killed"):
        for case in ("tiled batch 1", "tiled batch 8"):
            if case in results and not results[case].get("killed"):
                ratio = results["untiled"]["peak_kib"] / results[case]["peak_kib"]
                print(f"untiled / {case}: x{ratio:.2f} peak RSS")


if __name__ == "__main__":
    main()
