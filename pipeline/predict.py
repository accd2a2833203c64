"""Batch prediction over an index CSV: restore every frame into prediction folders, with the runtime per frame.

Each output is a :class:`pipeline.predictions.PredictionFolder` (16-bit and 8-bit PNGs and ``runtime.json``), replaced
whole and atomically. Frames can be split across processes with an ``accelerate.Accelerator``; rank 0 creates the
staging directory, every rank writes its share into it, and rank 0 writes ``runtime.json`` and renames it into place
once all ranks are done.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pipeline.config import TTAConfig
from pipeline.data.reds import has_frames, read_index
from pipeline.device import describe_device
from pipeline.fileio import TableError, read_image, write_json
from pipeline.inference import MODE_PARTS, Restorer
from pipeline.layout import VAL_SPLIT, Layout
from pipeline.predictions import PredictionFolder, Runtime

__all__ = ["index_frames", "predict", "run_inference"]


def index_frames(index_csv: str | os.PathLike) -> list[tuple[str, str]]:
    """``(name, blur_path)`` rows of an index CSV (:func:`pipeline.data.reds.read_index`); names must be unique plain
    file stems (they become output file names)."""
    frame = read_index(index_csv, ("name", "blur_path"))
    if frame.empty:
        raise TableError(f"{index_csv}: index has no rows")
    names = frame["name"]
    bad = [n for n in names if not n or "/" in n or "\\" in n or n.startswith(".")]
    if bad:
        raise TableError(f"{index_csv}: names must be plain file stems, got {bad[:5]}")
    dupes = sorted(names[names.duplicated()].unique())
    if dupes:
        raise TableError(f"{index_csv}: duplicate names {dupes[:5]}")
    return list(zip(names, frame["blur_path"], strict=True))


@contextmanager
def _staging(out_dir: Path, accelerator) -> Iterator[PredictionFolder]:
    """A staged prediction folder that replaces ``out_dir`` whole on success; with several processes rank 0 owns
    it."""
    if accelerator is None or accelerator.num_processes == 1:
        with PredictionFolder.build(out_dir) as folder:
            yield folder
        return
    from accelerate.utils import broadcast_object_list

    if accelerator.is_main_process:
        with PredictionFolder.build(out_dir) as folder:
            broadcast_object_list([str(folder.path)])
            yield folder
            accelerator.wait_for_everyone()
    else:
        shared = [None]
        broadcast_object_list(shared)
        yield PredictionFolder(shared[0])
        accelerator.wait_for_everyone()
    accelerator.wait_for_everyone()  # nobody returns before the rename


def predict(
    restorer: Restorer,
    index_csv: str | os.PathLike,
    out_dirs: Mapping[str, str | os.PathLike],
    *,
    accelerator=None,
    progress: bool = True,
    scratch: str | os.PathLike | None = None,
) -> dict[str, Runtime]:
    """Restore every frame of ``index_csv`` under each TTA mode of ``out_dirs`` ({mode: folder}) in one pass.

    Each frame runs the forwards of its most expensive mode once (:meth:`pipeline.inference.Restorer.restore`) and
    every mode's result is written to its own prediction folder, replaced whole and atomically. With an accelerator
    the restorer's model must be on ``accelerator.device``. ``seconds_per_frame`` of a mode is the model time of the
    parts that mode needs (what it would cost alone; no file I/O), averaged over all frames of all processes, the
    first (warm-up) frame included. Returns ``{mode: runtime}`` (also each folder's runtime.json).

    With ``scratch`` (a folder outside DVC's outputs, keyed by the caller to the weights and settings), every finished
    frame is kept there as it completes (each file atomic; a frame counts as done when its ``times/<name>.json`` is
    written last): a rerun after a crash or ``kill -9`` restores only the frames that are missing or unreadable, then
    publishes all of them. The result is byte-identical to an uninterrupted run.
    """
    if not out_dirs:
        raise ValueError("predict: no TTA mode asked for")
    modes = tuple(out_dirs)
    rows = index_frames(index_csv)
    device = restorer.device
    if accelerator is not None and torch.device(accelerator.device).type != device.type:
        raise ValueError(f"model is on {device} but the accelerator runs on {accelerator.device}; move it first")
    is_main = accelerator is None or accelerator.is_main_process

    with ExitStack() as stack:
        staged = {mode: stack.enter_context(_staging(Path(out_dirs[mode]), accelerator)) for mode in modes}
        part_seconds: dict[str, float] = {}
        frames = restored = 0
        keep = Path(scratch) if scratch is not None else None
        kept = {mode: PredictionFolder(keep / mode) for mode in modes} if keep is not None else None
        with _share(rows, accelerator) as mine:
            desc = f"predict {'/'.join(modes)}"
            bar = tqdm(mine, desc=desc, unit="frame", disable=None if progress and is_main else True)
            for name, blur_path in bar:
                frames += 1
                done = _scratch_frame(keep, kept, name) if keep is not None else None
                if done is None:
                    seconds: dict[str, float] = {}
                    outs = restorer.restore(read_image(blur_path), modes, seconds=seconds)
                    restored += 1
                    for mode, out in outs.items():
                        (kept or staged)[mode].write(name, out)
                    if keep is not None:
                        write_json(keep / "times" / f"{name}.json", seconds)  # last: marks the frame complete
                    done = seconds
                for part, sec in done.items():
                    part_seconds[part] = part_seconds.get(part, 0.0) + sec
                if kept is not None:
                    for mode in modes:
                        _link(kept[mode].png16(name), staged[mode].png16(name))
                        _link(kept[mode].png8(name), staged[mode].png8(name))
        if keep is not None and frames:
            print(f"predict: restored {restored} frame(s), reused {frames - restored} from {keep}", flush=True)
        if accelerator is not None and accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            totals = gather_object([(part_seconds, frames)])
            part_seconds = {k: sum(t.get(k, 0.0) for t, _ in totals) for k in part_seconds}
            frames = sum(f for _, f in totals)
        processes = 1 if accelerator is None else accelerator.num_processes
        runtimes = {}
        for mode in modes:
            seconds = sum(part_seconds.get(part, 0.0) for part in MODE_PARTS[mode])
            runtimes[mode] = Runtime(
                seconds_per_frame=seconds / max(frames, 1),
                frames=frames,
                device=describe_device(device) + (f" x{processes}" if processes > 1 else ""),
                precision=restorer.precision,
                tta=mode,
            )
            if is_main:
                staged[mode].write_runtime(runtimes[mode])
    return runtimes


def _scratch_frame(keep: Path, kept: Mapping[str, PredictionFolder], name: str) -> dict[str, float] | None:
    """The part timings of a frame finished in an earlier run, or None when any of its files is missing or unreadable
    (then it is restored again and its files replaced)."""
    times = keep / "times" / f"{name}.json"
    if not times.is_file():
        return None
    try:
        for folder in kept.values():
            folder.read16(name)
            folder.read8(name)
        return {str(k): float(v) for k, v in json.loads(times.read_text()).items()}
    except (ValueError, OSError):  # ImageReadError is a ValueError: a truncated or missing file is redone
        return None


def _link(src: Path, dst: Path) -> None:
    """Publish a scratch file into the staging folder: a hard link where possible, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextmanager
def _share(rows: list, accelerator) -> Iterator[list]:
    """This process's share of the rows (all of them without an accelerator)."""
    if accelerator is None:
        yield rows
    else:
        with accelerator.split_between_processes(rows) as mine:
            yield list(mine)


def _scratch_root(parent: Path, weights: Path, tta, accelerator, indexes: Sequence[Path] = ()) -> Path:
    """``parent/<key>``, key = hash of the weights file, the TTA settings and the frame indexes (their md5 columns: new
    input frames under the same names, e.g. another ``data.synth.task``, must not reuse old restorations); other keys
    (stale frames) are removed."""
    import dataclasses
    import hashlib

    blob = hashlib.sha256(weights.read_bytes()).hexdigest() + json.dumps(dataclasses.asdict(tta), sort_keys=True)
    for index in indexes:
        blob += hashlib.sha256(Path(index).read_bytes()).hexdigest() if Path(index).is_file() else f"no {index}"
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    if accelerator.is_main_process and parent.is_dir():
        for old in parent.iterdir():
            if old.name != key:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return parent / key


def run_inference(
    model_name: str,
    tta: TTAConfig,
    layout: Layout,
    *,
    cpu: bool | None = None,
    weights: str | os.PathLike | None = None,
    modes: Sequence[str] | None = None,
    test: bool = True,
) -> dict[str, Runtime]:
    """The ``infer@<model>`` stage: val-300 under every TTA mode of ``tta.ladder``, test frames under ``tta.submit``.

    Writes ``layout.predictions(model, mode, split)`` and returns ``{"<mode>/<split>": runtime}``. Frames are split
    across processes when launched with ``accelerate launch``. Finished frames are kept in
    ``layout.infer_scratch(model)/<key>/`` (``key``: a hash of the weights, the TTA settings and the indexes; older keys
    are removed), so a rerun after an interruption restores only the missing frames. Without test frames (the
    development phase) only val-300 is restored. ``weights`` (default ``layout.weights(model)``), ``modes`` (the
    val-300 modes, default ``tta.ladder``) and ``test=False`` (no test frames) serve the pretrained base:
    ``infer_base`` restores val-300 with ``layout.base_weights`` in the plain mode only.
    """
    from accelerate import Accelerator

    from pipeline.device import prepare_model
    from pipeline.models import load_model

    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    accelerator = Accelerator(cpu=use_cpu)
    weights = layout.weights(model_name) if weights is None else Path(weights)
    restorer = Restorer(prepare_model(load_model(weights), accelerator.device), tta)
    indexes = [layout.index(VAL_SPLIT), layout.index("test300")]
    scratch = _scratch_root(layout.infer_scratch(model_name), weights, tta, accelerator, indexes)
    val_modes = tuple(tta.ladder if modes is None else modes)
    jobs = {VAL_SPLIT: val_modes, "test300": (tta.submit,)}  # the val-300 ladder in one pass of its costliest mode
    if not test or not has_frames(layout.index("test300")):  # the development phase: no test frames yet
        del jobs["test300"]
    runtimes = {}
    for split, split_modes in jobs.items():
        done = predict(
            restorer,
            layout.index(split),
            {mode: layout.predictions(model_name, mode, split) for mode in split_modes},
            accelerator=accelerator,
            progress=accelerator.is_main_process,
            scratch=scratch / split,
        )
        runtimes.update({f"{mode}/{split}": runtime for mode, runtime in done.items()})
    return runtimes
