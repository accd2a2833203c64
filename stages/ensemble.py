"""DVC stage ``ensemble``: weighted average of the members' high-precision predictions, scored on val-300."""

from pathlib import Path

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.data.reds import has_frames
from pipeline.ensemble import run_ensemble


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")
    paths, ens = params.paths, params.ensemble
    members = ens.members or tuple(params.models)
    unknown = sorted(set(members) - set(params.models))
    if unknown:
        raise SystemExit(f"ensemble.members {unknown} are not models in params.yaml (models: {sorted(params.models)})")
    index = Path(paths.data) / "index"
    splits = ["val300"] + (["test300"] if has_frames(index / "test300.csv") else [])  # no test split in the dev phase
    run_ensemble(
        {m: {s: Path(paths.predictions) / m / params.tta.submit / s for s in splits} for m in members},
        splits,
        paths.ensemble,
        list(ens.weights) or None,
        ens.fit,
        ens.fit_fraction,
        Path(paths.data) / "index" / "val300.csv",
        metrics_json=Path(paths.metrics) / "ensemble.json",
        per_image_csv=Path("outputs/eval/ensemble/ensemble.csv"),
        seed=ens.seed,
        workers=params.data.workers,
    )


if __name__ == "__main__":
    main()
