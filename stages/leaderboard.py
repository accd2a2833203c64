"""DVC stage ``leaderboard``: one pandas table of every val-300 score (the pretrained base's plain mode among them),
every ladder step with its paired 95% interval (base -> member included), the seed spread, charts and a comparison
sheet."""

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.data.reds import read_index
from pipeline.fileio import write_image
from pipeline.layout import BASE, VAL_SPLIT, Layout
from pipeline.leaderboard import build_leaderboard, per_test_set_table, write_leaderboard
from pipeline.leaderboard.ladder import BASE_ENTRY, read_per_frame, seed_spreads, step_table
from pipeline.leaderboard.sheet import comparison_sheet
from pipeline.leaderboard.sources import per_source_table, read_sources
from pipeline.predictions import PredictionFolder


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")
    layout, tta = Layout(params.paths), params.tta
    models = list(params.models)
    members = list(params.ensemble.members or models)
    per_frame = read_per_frame(layout, models, tta.ladder)
    eval_jsons = [*(layout.eval_metrics(m) for m in models), layout.eval_metrics(BASE)]
    table = build_leaderboard(
        data_json=layout.data_metrics,
        eval_jsons=eval_jsons,
        train_jsons=[*(layout.train_metrics(m) for m in models), layout.base_provenance],
        ensemble_json=layout.ensemble_metrics,
        crops=tta.crops,
        per_frame=per_frame,
    )
    steps = step_table(per_frame, models, tta.ladder, tta.submit)
    best = max(models, key=lambda m: per_frame[f"{m}/{tta.ladder[0]}"]["psnr"].mean())
    sources = read_sources(layout.synthetic_manifest) if params.data.source == "synthetic" else None
    entries = [e for e in (BASE_ENTRY, f"{best}/{tta.ladder[0]}", f"{best}/{tta.submit}", "ensemble") if e in per_frame]
    write_leaderboard(
        table,
        layout.submissions,
        steps=steps,
        spreads=seed_spreads(per_frame, members, tta.ladder),
        per_frame=per_frame,
        per_source=None if sources is None else per_source_table(per_frame, sources, list(dict.fromkeys(entries))),
        test_sets=per_test_set_table(eval_jsons),
    )
    # Look, don't read: the best member by plain PSNR, without and with the submit TTA, and the ensemble.
    columns = [
        (f"{best} {mode}", PredictionFolder(layout.predictions(best, mode, VAL_SPLIT)).png8_dir)
        for mode in dict.fromkeys((tta.ladder[0], tta.submit))
    ]
    columns.append(("ensemble", PredictionFolder(layout.ensemble(VAL_SPLIT)).png8_dir))
    sheet = comparison_sheet(read_index(layout.index(VAL_SPLIT)), columns)
    write_image(layout.submissions / "comparison.png", sheet)
    print(table.drop(columns=["settings"]).to_string(index=False))
    print(steps.to_string(index=False))


if __name__ == "__main__":
    main()
