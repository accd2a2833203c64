"""DVC stage ``package``: the NTIRE submission zip of the ensemble's test predictions, validated after writing."""

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.layout import Layout
from pipeline.submission import build_submission


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")
    zip_path = build_submission(
        params.package, Layout(params.paths), models=params.models, tta=params.tta, ensemble=params.ensemble
    )
    print(f"wrote and validated {zip_path}")


if __name__ == "__main__":
    main()
