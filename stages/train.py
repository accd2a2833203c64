"""DVC stage ``train@<model>``: train one ensemble member from ``params.yaml``'s ``models.<model>`` section.

Runs as ``python -m stages.train --model NAME`` (one process) or under ``accelerate launch`` (many processes or nodes).
"""

import argparse

from pipeline.cli import reports_user_errors
from pipeline.config import ConfigError, load_params
from pipeline.train import train_model


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a key of the models section of params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--cpu", action="store_true", help="train on CPU even when CUDA is present")
    parser.add_argument("--max-steps-this-run", type=int, default=None, help="stop early (tests of resuming)")
    args = parser.parse_args()
    params = load_params(args.params)
    if args.model not in params.models:
        raise ConfigError(f"{args.params}: models.{args.model}: no such model (models: {sorted(params.models)})")
    train_model(
        args.model,
        params.models[args.model],
        params.paths,
        cpu=args.cpu or None,
        max_steps_this_run=args.max_steps_this_run,
    )


if __name__ == "__main__":
    main()
