"""DVC stage ``pretrain``: train the base model the members fine-tune from (``params.yaml``'s ``pretrain`` section).

Frozen in the default pipeline: its weights and provenance are committed, so ``dvc repro`` starts from them.
``dvc unfreeze pretrain && dvc repro pretrain`` retrains it (resumable: rerun after an interruption).
"""

import argparse

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.layout import BASE
from pipeline.train import TrainOutputs, train_model


@reports_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--cpu", action="store_true", help="train on CPU even when CUDA is present")
    args = parser.parse_args()
    params = load_params(args.params)
    train_model(
        BASE,
        params.pretrain,
        params.paths,
        cpu=args.cpu or None,
        outputs=TrainOutputs.for_pretrain(params.paths),
        provenance=True,
    )


if __name__ == "__main__":
    main()
