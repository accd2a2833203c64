"""Score weights files on the prepared val-300 in plain mode, per source photo; with several, each paired against the
first: how to compare candidate recipes for the base on a short budget before committing to a long run.

Run: ``python bench/score_weights.py pretrained/base.safetensors [candidate.safetensors ...] [--threads 1]`` after
``dvc repro prepare``. Reads ``paths.data``'s val-300 index and the embedded set's manifest; fp32, the default tile
(320) and overlap (32). Prints, per weights file, the mean gain over the blurry input, the frames below the input and
the mean gain per source photo; for every file after the first, its paired per-frame gain over the first with the
leaderboard's cluster-bootstrap interval (sequences resampled, ``pipeline.leaderboard.stats.paired_gain``).
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
import torch

from pipeline.config import load_params
from pipeline.data.reds import read_index
from pipeline.fileio import read_image, to_uint8
from pipeline.layout import VAL_SPLIT, Layout
from pipeline.leaderboard.stats import paired_gain, sequence_of
from pipeline.metrics import psnr
from pipeline.models.weights import load_model
from pipeline.tiling import restore_tiled


def score(weights: str, index: pd.DataFrame, sources: dict, tile: int, overlap: int) -> pd.DataFrame:
    """Per-frame plain fp32 PSNR of one weights file on val-300: name, source, input_psnr, psnr, gain_db."""
    model = load_model(weights)
    rows = []
    with torch.inference_mode():
        for _, r in index.iterrows():
            blur, sharp = read_image(r["blur_path"]), read_image(r["sharp_path"])
            out = to_uint8(restore_tiled(model, blur, tile=tile, overlap=overlap, precision="fp32"))
            rows.append((r["name"], sources[sequence_of(r["name"])], psnr(blur, sharp), psnr(out, sharp)))
    df = pd.DataFrame(rows, columns=["name", "source", "input_psnr", "psnr"]).set_index("name")
    df["gain_db"] = df["psnr"] - df["input_psnr"]
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="+", help="weights files; every one after the first is paired against it")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    layout = Layout(params.paths)
    sources = json.loads(layout.synthetic_manifest.read_text())["sources"]["val"]
    index = read_index(layout.index(VAL_SPLIT))
    scored = {w: score(w, index, sources, params.tta.tile, params.tta.overlap) for w in args.weights}
    first = args.weights[0]
    for w, df in scored.items():
        below = int((df["gain_db"] < 0).sum())
        print(
            f"{w}: mean gain {df['gain_db'].mean():+.3f} dB over the input ({df['input_psnr'].mean():.3f} dB), "
            f"{below}/{len(df)} frames below it"
        )
        if w != first:
            g = paired_gain(scored[first]["psnr"], df["psnr"])
            verdict = "significant" if g["significant"] else "not significant"
            print(
                f"  vs {first}: {g['gain_db']:+.3f} dB [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}] ({verdict}, "
                f"{g['clusters']} sequences)"
            )
    table = pd.DataFrame({w: df.groupby("source")["gain_db"].mean() for w, df in scored.items()})
    table.insert(0, "input_psnr", scored[first].groupby("source")["input_psnr"].mean())
    print(table.sort_values("input_psnr").round(2).to_string())


if __name__ == "__main__":
    main()
