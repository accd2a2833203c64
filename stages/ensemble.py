"""DVC stage ``ensemble``: weighted average of the members' high-precision predictions, scored on val-300."""

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.ensemble import run_ensemble
from pipeline.layout import Layout


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")  # checks that every ensemble member is a model
    run_ensemble(
        params.ensemble,
        Layout(params.paths),
        members=params.ensemble.members or tuple(params.models),
        mode=params.tta.submit,
        workers=params.data.workers,
    )


if __name__ == "__main__":
    main()
