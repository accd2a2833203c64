"""The 720p rehearsal: the real-REDS path at REDS frame size and validation counts, end to end on this machine.

Run: ``python bench/rehearsal_720p.py [--work /tmp/rehearsal-720p] [--ladder-frames 3]`` from the repository (about
45 min on 2 cores). It clones the committed HEAD into ``--work``, installs ``presets/rehearsal-720p.yaml`` as
params.yaml, and runs every stage with ``dvc repro --single-item`` under ``/usr/bin/time`` (wall time and the peak RSS
of the stage's largest process). Then, in this process, it measures what the stages do not: training samples/s per
worker from the rendered frames and from the shards (one process, and a DataLoader with 1 and 2 workers), the full
TTA ladder (plain, x8, x8 + 300 crops of 256 px) on ``--ladder-frames`` evenly spaced val-300 frames with the trained
model, and one 256 px tile forward of hinet-1x and hinet-2x-deep, from which the per-frame costs of the real models are
extrapolated. Prints a Markdown report (BENCHMARKS.md section 7) and writes it, with the raw numbers, to
``--work/rehearsal.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ["check_params", "prepare", "train@r720", "infer@r720", "evaluate@r720", "ensemble", "package", "leaderboard"]
REDS_TRAIN, REDS_VAL, REDS_TEST = 24_000, 3_000, 3_000  # frames in REDS train / val / test


def _cpu() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _sh(cmd: list[str], cwd: Path, env: dict) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def _run_stage(stage: str, cwd: Path, env: dict, cmd: list[str] | None = None) -> dict:
    """``dvc repro --single-item stage`` (or ``cmd``) under /usr/bin/time: wall seconds and the peak RSS (GiB) of its
    largest process."""
    stats = cwd / ".stage_time"
    cmd = ["/usr/bin/time", "-o", str(stats), "-f", "%e %M", *(cmd or ["dvc", "repro", "--single-item", stage])]
    subprocess.run(cmd, cwd=cwd, env=env, check=True)
    wall, rss_kb = stats.read_text().split()[-2:]
    return {"stage": stage, "seconds": float(wall), "peak_rss_gib": int(rss_kb) / 2**20}


def _disk(folder: Path, pattern: str = "*") -> tuple[int, int]:
    files = [p for p in folder.rglob(pattern) if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _loader(work: Path, crop: int) -> dict:
    """Training samples/s per worker from frames and from shards, and through DataLoaders of 1 and 2 workers."""
    import torch

    from pipeline.data.dataset import PairedPatchDataset
    from pipeline.data.reds import read_index
    from pipeline.data.shards import ShardSet

    train = read_index(work / "data/prepared/index/train.csv")
    sources = {
        "frames": PairedPatchDataset(train, crop),
        "shards": PairedPatchDataset.from_shards(ShardSet(work / "data/prepared/shards"), crop),
    }

    class Stream(torch.utils.data.Dataset):
        def __init__(self, base, n):
            self.base, self.n = base, n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return self.base.sample((i * 7919) % len(self.base), seed=i)

    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    for ds in sources.values():
        ds.sample(0, seed=0)  # warm-up: maps, decoders
    rates: dict[str, list[float]] = {"frames": [], "shards": []}
    for r in range(5):  # alternating rounds, so a load change hits both sources; the ratio is the median per round
        for name, n in (("frames", 30), ("shards", 300)):
            t = time.perf_counter()
            for i in range(r * n, (r + 1) * n):
                sources[name].sample((i * 7919) % len(sources[name]), seed=i)
            rates[name].append(n / (time.perf_counter() - t))
    ratios = sorted(s / f for s, f in zip(rates["shards"], rates["frames"], strict=True))
    out["per_worker_ratio_median"], out["per_worker_ratio_min"], out["per_worker_ratio_max"] = (
        ratios[2],
        ratios[0],
        ratios[-1],
    )
    for name, ds in sources.items():
        out[f"{name}_per_worker"] = sorted(rates[name])[2]
        n = 60 if name == "frames" else 600
        for workers in (1, 2):
            it = iter(torch.utils.data.DataLoader(Stream(ds, 10 * n), batch_size=4, num_workers=workers))
            for _ in range(2 * workers):
                next(it)
            t = time.perf_counter()
            batches = n // 4
            for _ in range(batches):
                next(it)
            out[f"{name}_loader_{workers}w"] = batches * 4 / (time.perf_counter() - t)
    torch.set_num_threads(threads)
    return out


def _ladder(work: Path, frames: int) -> dict:
    """Seconds per 720p frame of each TTA mode (the trained tiny model, bf16 autocast) on evenly spaced frames."""
    import numpy as np

    from pipeline.config import load_params
    from pipeline.data.reds import read_index
    from pipeline.device import prepare_model
    from pipeline.inference import Restorer
    from pipeline.models import load_model
    from pipeline.predict import predict

    params = load_params(work / "params.yaml")
    index = read_index(work / "data/prepared/index/val300.csv")  # run from ``work``: the recorded root is relative
    pick = np.linspace(0, len(index) - 1, frames).round().astype(int)  # a rule, fixed before any score is seen
    rows = index.iloc[pick].copy()
    rows["blur_path"] = [str(Path(p).resolve()) for p in rows["blur_path"]]
    sub = work / "ladder_index.csv"
    rows.to_csv(sub, index=False)
    restorer = Restorer(prepare_model(load_model(work / "models/r720.safetensors"), "cpu"), params.tta)
    modes = ("plain", "x8", "x8+crops")
    runtimes = predict(restorer, sub, {m: work / "ladder_out" / m for m in modes})
    return {m: r.seconds_per_frame for m, r in runtimes.items()}


def _tile_forward(variant: str, tile: int = 256, repeats: int = 2) -> float:
    """Seconds for one ``tile`` px forward of ``variant`` (bf16 autocast on CPU, as inference runs), after a warm-up."""
    import torch

    from pipeline.device import prepare_model
    from pipeline.models import create_model

    model = prepare_model(create_model(variant).eval(), "cpu")
    x = torch.rand(1, 3, tile, tile).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
        t = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - t) / repeats


def _tiles_per_frame(height: int, width: int, tile: int, overlap: int) -> int:
    from pipeline.tiling import tile_positions

    return len(tile_positions(height, tile, overlap)) * len(tile_positions(width, tile, overlap))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/rehearsal-720p"))
    ap.add_argument("--ladder-frames", type=int, default=3)
    ap.add_argument("--preset", default="presets/rehearsal-720p.yaml", help="a smaller preset for a smoke run")
    ap.add_argument("--skip-pipeline", action="store_true", help="reuse the stages already run in --work")
    args = ap.parse_args()
    work = args.work.resolve()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(work)}
    report: dict = {"cpu": _cpu(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if not args.skip_pipeline:
        if work.exists():
            shutil.rmtree(work)
        _sh(["git", "clone", "-q", str(REPO), str(work)], REPO, env)
        shutil.copy(REPO / args.preset, work / "params.yaml")
        render = (
            "from pipeline.config import load_params; from pipeline.data.synth import synthesize_reds; "
            "p = load_params('params.yaml'); synthesize_reds(p.data.synth, p.paths.synthetic_reds, workers=2)"
        )
        report["stages"] = [_run_stage("render", work, env, ["python", "-c", render])]  # what a download replaces
        report["stages"] += [_run_stage(s, work, env) for s in STAGES]
        (work / "stages.json").write_text(json.dumps(report["stages"], indent=1))
    else:
        report["stages"] = json.loads((work / "stages.json").read_text())
    sys.path.insert(0, str(work))
    os.chdir(work)
    data = json.loads((work / "metrics/data.json").read_text())
    report["data"] = data
    for key, folder, pattern in (
        ("rendered", "data/synthetic_reds_720p", "*"),
        ("rendered_train", "data/synthetic_reds_720p/train", "*"),
        ("shards", "data/prepared/shards", "*.shard"),
        ("prepared", "data/prepared", "*"),
    ):
        report[key] = dict(zip(("files", "bytes"), _disk(work / folder, pattern), strict=True))
    report["loader"] = _loader(work, 256)
    report["ladder"] = _ladder(work, args.ladder_frames)
    report["ladder_frames"] = args.ladder_frames
    report["tile_forward_s"] = {v: _tile_forward(v) for v in ("hinet-tiny", "hinet-1x", "hinet-2x-deep")}
    report["tiles_per_frame"] = _tiles_per_frame(720, 1280, 256, 32)
    report["bench_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    infer = json.loads(next((work / "outputs/predictions/r720/plain/val300").glob("runtime.json")).read_text())
    report["infer_plain_s_per_frame"] = infer["seconds_per_frame"]
    md = _markdown(report)
    (work / "rehearsal.json").write_text(json.dumps(report, indent=1))
    (work / "rehearsal.md").write_text(md)
    print(md)


def _markdown(r: dict) -> str:
    lines = [f"Measured {r['date']} on {r['cores']} cores of an {r['cpu']} (`python bench/rehearsal_720p.py`).", ""]
    lines += ["| stage | wall time | peak RSS |", "|---|---|---|"]
    for s in r["stages"]:
        lines.append(f"| `{s['stage']}` | {s['seconds']:.0f} s | {s['peak_rss_gib']:.2f} GiB |")
    total = sum(s["seconds"] for s in r["stages"])
    peak = max(s["peak_rss_gib"] for s in r["stages"])
    lines.append(f"| **all stages** | **{total / 60:.1f} min** | **{peak:.2f} GiB** |")
    c = r["data"]["counts"]
    n_train = c["train"]
    lines += [
        "",
        f"Data: {c['train']} training frames, {c['val']} val frames, val-300 = {c['val300']} frames, no test/ "
        f"(development phase). Rendered tree: {r['rendered']['files']} files, {r['rendered']['bytes'] / 1e9:.2f} GB. "
        f"Shards: {r['shards']['files']} files, {r['shards']['bytes'] / 1e9:.2f} GB for {n_train} training pairs "
        f"({r['shards']['bytes'] / n_train / 1e6:.2f} MB per pair; the rendered pairs take "
        f"{r['rendered_train']['bytes'] / n_train / 1e6:.2f} MB). `paths.data` in all: {r['prepared']['files']} files, "
        f"{r['prepared']['bytes'] / 1e9:.2f} GB.",
        "",
        "| training input, 256 px crops of 720p pairs | samples/s |",
        "|---|---|",
    ]
    ld = r["loader"]
    for name in ("frames", "shards"):
        lines.append(f"| {name}, one worker (the dataset's `sample`), median round | {ld[f'{name}_per_worker']:.0f} |")
        for w in (1, 2):
            lines.append(f"| {name}, DataLoader {w} worker(s), batch 4 | {ld[f'{name}_loader_{w}w']:.0f} |")
    lines.append(
        f"| shards vs frames, per worker (median of 5 alternating rounds) | x{ld['per_worker_ratio_median']:.1f} "
        f"(x{ld['per_worker_ratio_min']:.1f}-x{ld['per_worker_ratio_max']:.1f}) |"
    )
    t = r["tile_forward_s"]
    tiles = r["tiles_per_frame"]
    lad = r["ladder"]
    lines += [
        "",
        f"Inference per 720p frame, hinet-tiny, bf16 autocast: plain {r['infer_plain_s_per_frame']:.2f} s (all 300 "
        f"val-300 frames, `infer@r720`); on {r['ladder_frames']} evenly spaced frames: plain {lad['plain']:.2f} s, "
        f"x8 {lad['x8']:.2f} s, x8 + 300 crops of 256 px {lad['x8+crops']:.2f} s.",
        "",
        "| model | 256 px tile (measured) | plain / frame (extrapolated) | x8 / frame | x8 + 300 crops / frame |",
        "|---|---|---|---|---|",
    ]
    for v, sec in t.items():
        plain, crops = tiles * sec, 300 * sec
        lines.append(f"| {v} | {sec:.3f} s | {plain:.1f} s | {8 * plain:.1f} s | {8 * plain + crops:.1f} s |")
    prep = next(s["seconds"] for s in r["stages"] if s["stage"] == "prepare")
    frames_here = n_train + c["val"]
    lines += [
        "",
        f"A 720p frame is {tiles} tiles of 256 px (overlap 32). Extrapolated per-frame costs multiply the measured "
        "tile time by the tile count (x8: 8 times that, crops: one tile each), ignoring blending and I/O.",
        "",
        f"Extrapolation to full REDS ({REDS_TRAIN} training, {REDS_VAL} val frames): shards "
        f"{r['shards']['bytes'] / n_train * REDS_TRAIN / 1e9:.0f} GB in {-(-REDS_TRAIN // 1000)} files; `prepare` "
        f"~{prep * (REDS_TRAIN + REDS_VAL) / frames_here / 3600:.1f} h on 2 cores if it scales with the frame count "
        f"(here {prep:.0f} s for {frames_here} frames; rendering is a separate step, a download replaces it).",
        f"Peak RSS of this benchmark process: {r['bench_peak_rss_gib']:.2f} GiB.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
