"""DVC stage ``evaluate@<model>``: per-image and mean PSNR/SSIM on val-300 for every TTA mode of the ladder."""

import argparse

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.evaluate import evaluate_model
from pipeline.layout import Layout


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    params = load_params("params.yaml")
    evaluate_model(args.model, Layout(params.paths), params.tta.ladder, workers=params.data.workers)


if __name__ == "__main__":
    main()
