"""DVC stages ``evaluate@<model>`` (per-image and mean PSNR/SSIM on val-300 for every TTA mode of the ladder) and
``evaluate_base`` (``--base``: the pretrained base's plain mode)."""

import argparse

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.evaluate import evaluate_model
from pipeline.layout import BASE, BASE_MODE, Layout


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model")
    group.add_argument("--base", action="store_true", help="the pretrained base's plain-mode predictions")
    args = parser.parse_args()
    params = load_params("params.yaml")
    name, modes = (BASE, (BASE_MODE,)) if args.base else (args.model, params.tta.ladder)
    evaluate_model(name, Layout(params.paths), modes, workers=params.data.workers)


if __name__ == "__main__":
    main()
