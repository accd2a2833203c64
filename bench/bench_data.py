"""Training-input throughput: decode+crop of full frames vs stored patches (PNG, npy), and joblib scaling.

Run: ``python bench/bench_data.py [--height 720 --width 1280 --frames 8 --crop 256]``. It renders a small synthetic
REDS of the given frame size in a temporary folder, then, in this one process, times one training sample (blurry +
sharp decode and a random crop) from each source and the 1- vs 2-worker wall time of validation and patch extraction.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.config import SynthConfig
from pipeline.data.patches import extract_patches, load_pair
from pipeline.data.reds import index_reds
from pipeline.data.synth import synthesize_reds


def _per_sample(rows: list[tuple[str, str, int]], crop: int, repeats: int) -> float:
    """Seconds per (blurry, sharp) random crop, cycling over ``rows``."""
    rng = np.random.default_rng(0)
    n = max(len(rows), repeats)
    t = time.perf_counter()
    for i in range(n):
        blur, sharp = load_pair(*rows[i % len(rows)])
        h, w = blur.shape[:2]
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        np.ascontiguousarray(blur[y : y + crop, x : x + crop]), np.ascontiguousarray(sharp[y : y + crop, x : x + crop])
    return (time.perf_counter() - t) / n


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    args = ap.parse_args()
    cfg = SynthConfig(
        height=args.height,
        width=args.width,
        train_sequences=1,
        val_sequences=1,
        test_sequences=1,
        frames_per_sequence=args.frames,
        subframes=3,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = _timed(lambda: synthesize_reds(cfg, tmp / "reds", workers=2))
        print(f"synthesized {3 * args.frames} frames of {args.height}x{args.width} in {t:.1f}s (2 workers)")
        index_reds(tmp / "reds", workers=2)  # warm-up: imports, worker pool, page cache
        v1 = _timed(lambda: index_reds(tmp / "reds", workers=1))
        v2 = _timed(lambda: index_reds(tmp / "reds", workers=2))
        train = index_reds(tmp / "reds", workers=2)["train"]
        kw = {"patch_size": args.crop, "stride": args.stride}
        e1 = _timed(lambda: extract_patches(train, tmp / "p1", fmt="png", workers=1, **kw))
        e2 = _timed(lambda: extract_patches(train, tmp / "p2", fmt="png", workers=2, **kw))
        png = extract_patches(train, tmp / "png", fmt="png", workers=2, **kw)
        npy = extract_patches(train, tmp / "npy", fmt="npy", workers=2, **kw)
        frames = [(b, s, -1) for b, s in zip(train["blur_path"], train["sharp_path"], strict=True)]
        repeats = 4 * len(frames)
        full = _per_sample(frames, args.crop, repeats)
        png_t = _per_sample(list(zip(png["blur_path"], png["sharp_path"], png["offset"], strict=True)), args.crop, 200)
        npy_t = _per_sample(list(zip(npy["blur_path"], npy["sharp_path"], npy["offset"], strict=True)), args.crop, 2000)
        size = {f: sum(p.stat().st_size for p in (tmp / f).rglob("*") if p.is_file()) for f in ("png", "npy")}
        frames_bytes = sum(p.stat().st_size for p in (tmp / "reds" / "train").rglob("*") if p.is_file())
    print(f"training sample ({args.crop}x{args.crop} blurry+sharp crop, one process):")
    print(f"  full frames : {1000 * full:9.3f} ms/sample  {1 / full:9.1f} samples/s")
    print(f"  PNG patches : {1000 * png_t:9.3f} ms/sample  {1 / png_t:9.1f} samples/s  x{full / png_t:.1f} vs frames")
    print(f"  npy patches : {1000 * npy_t:9.3f} ms/sample  {1 / npy_t:9.1f} samples/s  x{full / npy_t:.1f} vs frames")
    per_frame = len(png) / len(train)
    print(
        f"disk per training frame: frames {frames_bytes / len(train) / 1e6:.2f} MB, PNG patches "
        f"{size['png'] / len(train) / 1e6:.2f} MB, npy patches {size['npy'] / len(train) / 1e6:.2f} MB "
        f"({per_frame:.0f} patches/frame)"
    )
    print(f"joblib: validation 1 worker {v1:.2f}s, 2 workers {v2:.2f}s, speed-up x{v1 / v2:.2f}")
    print(f"joblib: patch extraction 1 worker {e1:.2f}s, 2 workers {e2:.2f}s, speed-up x{e1 / e2:.2f}")


if __name__ == "__main__":
    main()
