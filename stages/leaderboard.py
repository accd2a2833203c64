"""DVC stage ``leaderboard``: one pandas table of every val-300 score, as CSV, Markdown and PNG charts."""

from pathlib import Path

from pipeline.config import load_params
from pipeline.leaderboard import build_leaderboard, write_leaderboard


def main() -> None:
    params = load_params("params.yaml")
    metrics = Path(params.paths.metrics)
    table = build_leaderboard(
        metrics / "data.json",
        sorted((metrics / "eval").glob("*.json")),
        metrics / "ensemble.json",
        sorted((metrics / "train").glob("*.json")),
    )
    write_leaderboard(table, params.paths.submissions)
    print(table.to_string(index=False, max_colwidth=40))


if __name__ == "__main__":
    main()
