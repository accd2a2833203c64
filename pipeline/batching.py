"""How a recipe's global batch is split over processes (and gradient accumulation): pure arithmetic, so the params
check can reject a split that cannot work before any stage starts, with the same rule training applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.config import Params

__all__ = ["BatchPlan", "BatchPlanError", "check_batch_splits", "plan_batch"]


@dataclass(frozen=True)
class BatchPlan:
    """How a recipe's global batch is split: ``global_batch = processes * per_process * accumulation``."""

    processes: int
    per_process: int
    accumulation: int
    global_batch: int


class BatchPlanError(PipelineError):
    """The global batch cannot be split over the processes; the message names the values and the fix."""


def plan_batch(global_batch: int, processes: int, max_per_process: int = 0) -> BatchPlan:
    """Split ``global_batch`` over ``processes``, accumulating gradients when a process may hold fewer samples
    (``max_per_process``; the smallest accumulation that gives equal micro-batches within the cap)."""
    if global_batch < 1 or processes < 1:
        raise BatchPlanError(f"global_batch {global_batch} and processes {processes} must both be >= 1")
    if global_batch % processes:
        raise BatchPlanError(
            f"global_batch {global_batch} is not divisible by {processes} processes (launch.processes): use a global "
            f"batch that is a multiple of {processes}, or a process count that divides {global_batch}"
        )
    share = global_batch // processes
    accumulation = 1 if max_per_process <= 0 else -(-share // max_per_process)
    while share % accumulation:  # equal micro-batches: the smallest accumulation that divides the share
        accumulation += 1
    return BatchPlan(processes, share // accumulation, accumulation, global_batch)


def check_batch_splits(params: Params) -> None:
    """Every recipe's ``global_batch`` splits over ``launch.processes`` (the rule training applies), else a
    :class:`pipeline.config.ConfigError` naming the key: stage ``check_params`` stops there, not every launched process.
    """
    from pipeline.config import ConfigError

    recipes = [("pretrain", params.pretrain), *((f"models.{m}", cfg) for m, cfg in params.models.items())]
    for at, cfg in recipes:
        try:
            plan_batch(cfg.global_batch, params.launch.processes, cfg.max_batch_per_process)
        except BatchPlanError as err:
            raise ConfigError(f"{at}.global_batch: {err}", key="global_batch", problem=str(err)) from None
