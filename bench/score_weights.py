"""Score any weights file on the prepared val-300 in plain mode, per source photo: what a checkpoint does to each photo.

Run: ``python bench/score_weights.py pretrained/deadleaves_base.safetensors [--threads 1]`` after ``dvc repro
prepare``. Reads ``paths.data``'s val-300 index and the embedded set's manifest; fp32, the default tile (320) and
overlap (32). Prints the mean gain over the blurry input and the mean input PSNR and gain per source photo.
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
from pipeline.leaderboard.stats import sequence_of
from pipeline.metrics import psnr
from pipeline.models.weights import load_model
from pipeline.tiling import restore_tiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    layout = Layout(params.paths)
    sources = json.loads(layout.synthetic_manifest.read_text())["sources"]["val"]
    model = load_model(args.weights)
    rows = []
    with torch.inference_mode():
        for _, r in read_index(layout.index(VAL_SPLIT)).iterrows():
            blur, sharp = read_image(r["blur_path"]), read_image(r["sharp_path"])
            tta = params.tta
            out = to_uint8(restore_tiled(model, blur, tile=tta.tile, overlap=tta.overlap, precision="fp32"))
            rows.append((r["name"], sources[sequence_of(r["name"])], psnr(blur, sharp), psnr(out, sharp)))
    df = pd.DataFrame(rows, columns=["name", "source", "input_psnr", "psnr"])
    df["gain_db"] = df["psnr"] - df["input_psnr"]
    print(f"{args.weights}: mean gain {df['gain_db'].mean():+.3f} dB over the input ({df['input_psnr'].mean():.3f} dB)")
    print(df.groupby("source")[["input_psnr", "gain_db"]].mean().round(2).to_string())


if __name__ == "__main__":
    main()
