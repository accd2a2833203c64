"""DVC stages ``infer@<model>`` (val-300 under every TTA mode of the ladder, and the test frames) and ``infer_base``
(``--base``: val-300 with the pretrained base's weights, plain mode only)."""

import argparse

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.layout import BASE, BASE_MODE, Layout
from pipeline.predict import run_inference


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model")
    group.add_argument("--base", action="store_true", help="the pretrained base, val-300 in the plain mode only")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even when CUDA is present")
    args = parser.parse_args()
    params = load_params("params.yaml")
    layout, cpu = Layout(params.paths), args.cpu or None
    if args.base:
        name, kw = BASE, dict(weights=layout.base_weights, modes=(BASE_MODE,), test=False)
    else:
        name, kw = args.model, {}
    for job, runtime in run_inference(name, params.tta, layout, cpu=cpu, **kw).items():
        print(f"{name} {job}: {runtime.seconds_per_frame:.3f} s/frame on {runtime.device}")


if __name__ == "__main__":
    main()
