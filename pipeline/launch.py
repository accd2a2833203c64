"""Run a stage script under ``accelerate launch`` with the ``launch`` section of params.yaml.

``python -m pipeline.launch stages.train --model wd_s1`` reads ``launch.processes`` and starts that many processes
on this machine: one process on CPU or one GPU; N GPUs (``--multi_gpu``); or N gloo processes on a CPU-only machine
(``--multi_gpu`` without CUDA, one thread each). The command is checked before anything starts: more processes than
visible GPUs (or CPU cores) is an error naming the value and the fix (``check_params`` runs the same check first).
A failing script's exit is passed on without a launcher traceback of its own: with one process through accelerate's
``--quiet`` (exit 1); with N processes the launcher runs in this process and turns torch elastic's failure (its
``ChildFailedError`` traceback and report box) into the failed ranks' exit code, after each rank's own error line.
``--dry-run`` prints the command instead.
Precision is not set here: the script takes it from the recipe (``models.<m>.mixed_precision``, ``tta.precision``).
Multi-node runs are started by hand on every node (README, "Many nodes").
The stage is a module (``stages.train``: each process runs ``python -m stages.train``, so it imports the ``pipeline``
of the folder it runs in, which is what a queued ``dvc exp run`` needs) or a script path (``stages/train.py``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from pipeline.cli import reports_user_errors
from pipeline.config import LaunchConfig, load_params
from pipeline.errors import PipelineError

__all__ = ["LaunchError", "accelerate_command", "check_machine", "main"]


class LaunchError(PipelineError):
    """The launch settings do not fit this machine; the message names the value and the fix."""


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_machine(launch: LaunchConfig, *, gpus: int | None = None, cores: int | None = None) -> tuple[int, int]:
    """(GPUs used, cores) when ``launch`` fits this machine; a :class:`LaunchError` naming the fix otherwise."""
    gpus = _visible_gpus() if gpus is None else gpus
    cores = (os.cpu_count() or 1) if cores is None else cores
    n = launch.processes
    if launch.gpu_ids != "all" and gpus:
        gpus = len([g for g in launch.gpu_ids.split(",") if g.strip()])
    if gpus and n > gpus:
        raise LaunchError(f"launch.processes is {n} but only {gpus} GPU(s) are visible: set launch.processes <= {gpus}")
    if not gpus and n > cores:
        raise LaunchError(
            f"launch.processes is {n} but this CPU-only machine has {cores} core(s): set launch.processes <= {cores}"
        )
    return gpus, cores


def accelerate_command(
    launch: LaunchConfig, script_args: list[str], *, gpus: int | None = None, cores: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """The ``accelerate launch`` argv and extra environment for ``script_args`` under ``launch``: a module name
    first (``stages.train``, run as ``python -m``) or a script path (``stages/train.py``), then its arguments."""
    gpus, cores = check_machine(launch, gpus=gpus, cores=cores)
    n = launch.processes
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--num_processes",
        str(n),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    if n == 1:
        # A failing script already printed its one-line error (or its own traceback): accelerate's single-process
        # launcher would add a CalledProcessError traceback of its own; quiet, it exits 1 (the user-error code).
        cmd += ["--quiet"]
    env: dict[str, str] = {}
    if n > 1:
        cmd += ["--multi_gpu", "--main_process_port", str(launch.main_process_port)]
    if not gpus:
        if n == 1:
            cmd += ["--cpu"]
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(max(1, cores // n)))
    elif launch.gpu_ids != "all":
        cmd += ["--gpu_ids", launch.gpu_ids]
    if script_args and _is_module(script_args[0]):
        cmd += ["--module"]
    return cmd + list(script_args), env


def _is_module(target: str) -> bool:
    """``stages.train`` (a dotted module name), not ``stages/train.py`` (a script path)."""
    return not target.endswith(".py") and all(part.isidentifier() for part in target.split("."))


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file whose `launch` section is used")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("script", help="the stage module (stages.train) or script path (stages/train.py)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    args = parser.parse_args(argv)
    launch = load_params(args.params).launch
    cmd, env = accelerate_command(launch, [args.script, *args.args])
    if args.dry_run:
        print(" ".join(f"{k}={v}" for k, v in env.items()), shlex.join(cmd))
        return 0
    sys.stdout.flush()
    if launch.processes == 1:
        os.execvpe(cmd[0], cmd, {**os.environ, **env})
    return _launch_in_process(cmd[3:], env)


def _launch_in_process(launch_args: list[str], env: dict[str, str]) -> int:
    """Run ``accelerate launch LAUNCH_ARGS`` here (N processes under torch elastic) and return the exit code: 0, or the
    failed ranks' largest exit code. The ranks printed their own errors; elastic's report would only repeat them."""
    import logging

    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.update(env)
    args = launch_command_parser().parse_args(launch_args)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its "failed (exitcode: 1)" lines
    try:
        launch_command(args)
    except ChildFailedError as exc:
        code = max((f.exitcode for f in exc.failures.values()), default=1)
        return code if code > 0 else 1  # a rank killed by a signal reports a negative code
    return 0


if __name__ == "__main__":
    sys.exit(main())
