"""Training: one readable accelerate loop for one CPU, one GPU, many GPUs or many nodes, resumable bit for bit.

- :mod:`.loop`: the accelerate loop, setup -> resume -> loop -> finalize (:func:`train_model`), and :func:`validate`.
- :mod:`.run`: what the loop runs on: :class:`TrainOutputs` (its files, named by ``Layout``), the checkpointed
  :class:`LoopState` (step, wall time, best score), the accelerator, model, optimizer and data (``build_run``).
- :mod:`.sampler`: :class:`StepSamples`, the sample order as a function of the global step, so a resumed run (after a
  crash or a ``kill -9``) replays exactly the batches an uninterrupted run would have seen.
- :mod:`.fingerprint`: what a checkpoint must share to be resumed (recipe, data, training code, process count).
- :mod:`.checkpoints`: checkpoint folders (atomic, rotated, labelled), snapshots and :func:`export_weights`.
- :mod:`.records`: the run's record (:class:`TrainRecord`, ``metrics/train/<m>.json``), provenance, DVCLive curves.
"""

from pipeline.batching import BatchPlan, BatchPlanError, plan_batch
from pipeline.train.checkpoints import export_weights
from pipeline.train.fingerprint import config_fingerprint, data_fingerprint, run_fingerprint, training_code
from pipeline.train.loop import NonFiniteLossError, train_model, validate
from pipeline.train.records import TrainRecord, cpu_model, read_live_curve, read_train_record, write_train_record
from pipeline.train.run import LoopState, TrainOutputs, build_model, training_dtype
from pipeline.train.sampler import StepSamples

__all__ = [
    "BatchPlan",
    "BatchPlanError",
    "LoopState",
    "NonFiniteLossError",
    "StepSamples",
    "TrainOutputs",
    "TrainRecord",
    "build_model",
    "config_fingerprint",
    "cpu_model",
    "data_fingerprint",
    "export_weights",
    "plan_batch",
    "read_live_curve",
    "read_train_record",
    "run_fingerprint",
    "train_model",
    "training_code",
    "training_dtype",
    "validate",
    "write_train_record",
]
