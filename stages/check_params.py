"""DVC stage ``check_params``: validate the whole params.yaml before any stage does work.

It depends on every key of the file, so a typo or a value out of range (in any section, read by any stage or by
none) stops ``dvc repro`` here; its output is the same for every valid file, so a valid edit reruns nothing else.
"""

from pipeline.batching import check_batch_splits
from pipeline.cli import reports_user_errors
from pipeline.config import load_params, params_check
from pipeline.fileio import write_json
from pipeline.launch import check_machine
from pipeline.layout import Layout


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")
    check_machine(params.launch)  # more processes than GPUs / cores: stop here, not in a launched stage
    check_batch_splits(params)  # a global batch the processes do not divide
    write_json(Layout(params.paths).params_check, params_check(params))


if __name__ == "__main__":
    main()
