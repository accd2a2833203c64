"""DVC stage ``infer@<model>``: predictions for val-300 (every TTA mode of the ladder) and the test frames."""

import argparse

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.layout import Layout
from pipeline.predict import run_inference


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even when CUDA is present")
    args = parser.parse_args()
    params = load_params("params.yaml")
    for job, runtime in run_inference(args.model, params.tta, Layout(params.paths), cpu=args.cpu or None).items():
        print(f"{args.model} {job}: {runtime['seconds_per_frame']:.3f} s/frame on {runtime['device']}")


if __name__ == "__main__":
    main()
