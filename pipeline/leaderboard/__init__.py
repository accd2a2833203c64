"""The val-300 leaderboard: the table (:mod:`.table`), the steps between its rows (:mod:`.ladder`: the step table
and the ablation ladder, with the paired intervals of :mod:`.stats`), its charts (:mod:`.charts`), the comparison
sheet (:mod:`.sheet`), the scores by source photo (:mod:`.sources`) and the merge of every DVC experiment's rows
(:mod:`.merge`, ``python -m pipeline.leaderboard merge``)."""

from pipeline.leaderboard.charts import plot_ladder, plot_pareto
from pipeline.leaderboard.ladder import ablation_ladder
from pipeline.leaderboard.merge import main, merge_experiments, pivot_psnr
from pipeline.leaderboard.table import (
    COLUMNS,
    LeaderboardError,
    build_leaderboard,
    pareto_front,
    per_test_set_table,
    write_leaderboard,
)

__all__ = [
    "COLUMNS",
    "LeaderboardError",
    "ablation_ladder",
    "build_leaderboard",
    "main",
    "merge_experiments",
    "pareto_front",
    "pivot_psnr",
    "plot_ladder",
    "plot_pareto",
    "per_test_set_table",
    "write_leaderboard",
]
