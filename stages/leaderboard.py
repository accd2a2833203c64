"""DVC stage ``leaderboard``: one pandas table of every val-300 score, every ladder step with its paired 95% interval,
the seed spread, charts and a comparison sheet."""

from pathlib import Path

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.data.reds import read_index
from pipeline.fileio import write_image
from pipeline.ladder import read_per_frame, seed_spreads, step_table
from pipeline.leaderboard import build_leaderboard, write_leaderboard
from pipeline.sheet import comparison_sheet

EVAL_DIR = Path("outputs/eval")


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")
    paths, tta = params.paths, params.tta
    metrics = Path(paths.metrics)
    models = list(params.models)
    members = list(params.ensemble.members or models)
    per_frame = read_per_frame(EVAL_DIR, models, tta.ladder, EVAL_DIR / "ensemble" / "ensemble.csv")
    table = build_leaderboard(
        metrics / "data.json",
        [metrics / "eval" / f"{m}.json" for m in models],
        metrics / "ensemble.json",
        [metrics / "train" / f"{m}.json" for m in models],
        per_frame=per_frame,
    )
    steps = step_table(per_frame, models, tta.ladder, tta.submit)
    write_leaderboard(
        table, paths.submissions, steps=steps, spreads=seed_spreads(per_frame, members, tta.ladder), per_frame=per_frame
    )
    # Look, don't read: the best member by plain PSNR, without and with the submit TTA, and the ensemble.
    best = max(models, key=lambda m: per_frame[f"{m}/{tta.ladder[0]}"]["psnr"].mean())
    columns = [
        (f"{best} {mode}", Path(paths.predictions) / best / mode / "val300" / "png8")
        for mode in dict.fromkeys((tta.ladder[0], tta.submit))
    ]
    columns.append(("ensemble", Path(paths.ensemble) / "val300" / "png8"))
    sheet = comparison_sheet(read_index(Path(paths.data) / "index" / "val300.csv"), columns)
    write_image(Path(paths.submissions) / "comparison.png", sheet)
    print(table.drop(columns=["settings"]).to_string(index=False))
    print(steps.to_string(index=False))


if __name__ == "__main__":
    main()
