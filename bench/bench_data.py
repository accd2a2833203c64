"""Training-input throughput: full frames vs PNG / npy patches vs shards, per worker and through a DataLoader.

Run: ``python bench/bench_data.py [--height 720 --width 1280 --frames 8 --crop 256]``. It renders a small synthetic
REDS of the given frame size in a temporary folder, then, in this one process, times one training sample (the
dataset's own ``sample``: decode, crop, flip/rotate, to tensor) from each source, the files and bytes each takes, a
DataLoader with 1 and 2 workers for frames and shards, and the 1- vs 2-worker wall time of validation, patch
extraction and shard writing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pipeline.config import SynthConfig
from pipeline.data.dataset import PairedPatchDataset
from pipeline.data.patches import extract_patches
from pipeline.data.reds import index_reds
from pipeline.data.shards import ShardSet, write_shards
from pipeline.data.synth import synthesize_reds


def _per_sample(ds: PairedPatchDataset, repeats: int) -> float:
    """Seconds per training sample (decode, crop, flip/rotate, to tensor) as a DataLoader worker makes it."""
    n = max(len(ds), repeats)
    t = time.perf_counter()
    for i in range(n):
        ds.sample(i % len(ds), seed=i)
    return (time.perf_counter() - t) / n


class _Stream(torch.utils.data.Dataset):
    def __init__(self, base: PairedPatchDataset, n: int):
        self.base, self.n = base, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.base.sample(i % len(self.base), seed=i)


def _loader_rate(ds: PairedPatchDataset, workers: int, n: int) -> float:
    """Samples/s through a DataLoader with ``workers`` workers (batch 8), worker start-up excluded."""
    it = iter(torch.utils.data.DataLoader(_Stream(ds, n + 8 * workers * 2), batch_size=8, num_workers=workers))
    for _ in range(max(workers, 1) * 2):  # warm-up: every worker started and produced
        next(it)
    t = time.perf_counter()
    for _ in range(n // 8):
        next(it)
    return (n // 8) * 8 / (time.perf_counter() - t)


def _disk(folder: Path, pattern: str = "*") -> tuple[int, int]:
    files = [p for p in folder.rglob(pattern) if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


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
    ap.add_argument("--stride", type=int, default=192, help="patch stride; patches are twice this size")
    ap.add_argument("--loader-samples", type=int, default=400)
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
        kw = {"patch_size": args.stride * 2, "stride": args.stride}
        e1 = _timed(lambda: extract_patches(train, tmp / "p1", fmt="png", workers=1, **kw))
        e2 = _timed(lambda: extract_patches(train, tmp / "p2", fmt="png", workers=2, **kw))
        s1 = _timed(lambda: write_shards(train, tmp / "s1", frames_per_shard=1000, workers=1))
        s2 = _timed(lambda: write_shards(train, tmp / "s2", frames_per_shard=max(len(train) // 2, 1), workers=2))
        sources = {
            "full frames (JPEG + PNG decode)": PairedPatchDataset(train, args.crop),
            f"PNG patches ({kw['patch_size']}, stride {args.stride})": PairedPatchDataset(
                extract_patches(train, tmp / "png", fmt="png", workers=2, **kw), args.crop
            ),
            "npy patches (memmap)": PairedPatchDataset(
                extract_patches(train, tmp / "npy", fmt="npy", workers=2, **kw), args.crop
            ),
            "shards (64 px tiles, delta + zstd)": PairedPatchDataset.from_shards(ShardSet(tmp / "s1"), args.crop),
        }
        disk = {
            "full frames (JPEG + PNG decode)": _disk(tmp / "reds" / "train"),
            f"PNG patches ({kw['patch_size']}, stride {args.stride})": _disk(tmp / "png"),
            "npy patches (memmap)": _disk(tmp / "npy"),
            "shards (64 px tiles, delta + zstd)": _disk(tmp / "s1"),
        }
        per = {name: _per_sample(ds, 4 * len(train)) for name, ds in sources.items()}
        frames_s = next(iter(per.values()))
        loader = {
            name: [_loader_rate(sources[name], w, args.loader_samples) for w in (1, 2)]
            for name in ("full frames (JPEG + PNG decode)", "shards (64 px tiles, delta + zstd)")
        }
    n = len(train)
    print(f"training sample ({args.crop} px blurry+sharp crop, flip/rotate, to tensor; one process), {n} frames:")
    print("| source | ms/sample | samples/s | vs full frames | files | MB per training frame |")
    print("|---|---|---|---|---|---|")
    for name, t in per.items():
        files, size = disk[name]
        print(f"| {name} | {1000 * t:.3f} | {1 / t:.0f} | x{frames_s / t:.1f} | {files} | {size / n / 1e6:.2f} |")
    for name, (one, two) in loader.items():
        print(f"DataLoader, {name}: 1 worker {one:.0f} samples/s, 2 workers {two:.0f} samples/s")
    print(f"joblib: validation 1 worker {v1:.2f}s, 2 workers {v2:.2f}s, speed-up x{v1 / v2:.2f}")
    print(f"joblib: patch extraction 1 worker {e1:.2f}s, 2 workers {e2:.2f}s, speed-up x{e1 / e2:.2f}")
    print(f"joblib: shard writing 1 worker {s1:.2f}s, 2 workers (2 shards) {s2:.2f}s, speed-up x{s1 / s2:.2f}")


if __name__ == "__main__":
    main()
