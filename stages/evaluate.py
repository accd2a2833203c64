"""DVC stage ``evaluate@<model>``: per-image and mean PSNR/SSIM on val-300 for every TTA mode of the ladder."""

import argparse
import dataclasses
import json
from pathlib import Path

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.evaluate import evaluate_model


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    params = load_params("params.yaml")
    paths = params.paths
    train = json.loads((Path(paths.metrics) / "train" / f"{args.model}.json").read_text())
    evaluate_model(
        args.model,
        Path(paths.predictions) / args.model,
        list(params.tta.ladder),
        Path(paths.data) / "index" / "val300.csv",
        Path("outputs/eval") / args.model,
        Path(paths.metrics) / "eval" / f"{args.model}.json",
        extra={
            "params": train["params"],
            "macs_g_256": train["macs_g_256"],
            "variant": train["variant"],
            "crops": dataclasses.asdict(params.tta.crops),
        },
        workers=params.data.workers,
    )


if __name__ == "__main__":
    main()
