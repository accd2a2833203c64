"""Batch prediction over an index CSV: restore every frame, write 16-bit and 8-bit PNGs and the runtime per frame.

Output layout (``out_dir``, replaced whole and atomically): ``png16/<name>.png`` (16-bit, unrounded to 8 bits, for
ensembling), ``png8/<name>.png`` (``round(x * 255)``, what is scored and submitted) and ``runtime.json``. Frames can be
split across processes with an ``accelerate.Accelerator``; rank 0 creates the staging directory, every rank writes its
share into it, and rank 0 writes ``runtime.json`` and renames it into place once all ranks are done.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from pipeline.config import TTAConfig
from pipeline.data.reds import has_frames, read_index
from pipeline.device import describe_device, model_device, precision_name, resolve_precision
from pipeline.fileio import atomic_dir, read_image, read_image16, to_uint8, write_image, write_image16, write_json
from pipeline.inference import MODE_PARTS, restore_ladder
from pipeline.layout import VAL_SPLIT, Layout

__all__ = ["RUNTIME_KEYS", "index_frames", "predict_index", "predict_ladder", "run_inference"]

RUNTIME_KEYS = ("seconds_per_frame", "frames", "device", "precision", "tta")


def index_frames(index_csv: str | os.PathLike) -> list[tuple[str, str]]:
    """``(name, blur_path)`` rows of an index CSV (:func:`pipeline.data.reds.read_index`); names must be unique plain
    file stems (they become output file names)."""
    frame = read_index(index_csv, ("name", "blur_path"))
    if frame.empty:
        raise ValueError(f"{index_csv}: index has no rows")
    names = frame["name"]
    bad = [n for n in names if not n or "/" in n or "\\" in n or n.startswith(".")]
    if bad:
        raise ValueError(f"{index_csv}: names must be plain file stems, got {bad[:5]}")
    dupes = sorted(names[names.duplicated()].unique())
    if dupes:
        raise ValueError(f"{index_csv}: duplicate names {dupes[:5]}")
    return list(zip(names, frame["blur_path"], strict=True))


@contextmanager
def _staging(out_dir: Path, accelerator) -> Iterator[Path]:
    """A staging directory that replaces ``out_dir`` whole on success; with several processes rank 0 owns it."""
    if accelerator is None or accelerator.num_processes == 1:
        with atomic_dir(out_dir) as tmp:
            yield tmp
        return
    from accelerate.utils import broadcast_object_list

    if accelerator.is_main_process:
        with atomic_dir(out_dir) as tmp:
            broadcast_object_list([str(tmp)])
            yield tmp
            accelerator.wait_for_everyone()
    else:
        shared = [None]
        broadcast_object_list(shared)
        yield Path(shared[0])
        accelerator.wait_for_everyone()
    accelerator.wait_for_everyone()  # nobody returns before the rename


def predict_index(
    model: nn.Module,
    index_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    tta: TTAConfig,
    *,
    mode: str | None = None,
    accelerator=None,
    progress: bool = True,
) -> dict:
    """Restore every ``blur_path`` of ``index_csv`` into ``out_dir`` under one TTA mode (default ``tta.submit``);
    returns the runtime dict.

    The model must already be on its device (``pipeline.device.prepare_model``; with an accelerator, on
    ``accelerator.device``) and in eval mode. See :func:`predict_ladder` for the timing rule.
    """
    mode = tta.submit if mode is None else mode
    return predict_ladder(model, index_csv, {mode: out_dir}, tta, accelerator=accelerator, progress=progress)[mode]


def predict_ladder(
    model: nn.Module,
    index_csv: str | os.PathLike,
    out_dirs: dict[str, str | os.PathLike],
    tta: TTAConfig,
    *,
    accelerator=None,
    progress: bool = True,
    scratch: str | os.PathLike | None = None,
) -> dict[str, dict]:
    """Restore every frame of ``index_csv`` under each TTA mode of ``out_dirs`` ({mode: folder}) in one pass, with
    the tiling, batch, precision and crops of ``tta``.

    Each frame runs the forwards of its most expensive mode once (:func:`pipeline.inference.restore_ladder`) and every
    mode's result is written to its own folder, replaced whole and atomically. ``seconds_per_frame`` of a mode is the
    model time of the parts that mode needs (what it would cost alone; no file I/O), averaged over all frames of all
    processes, the first (warm-up) frame included. Returns ``{mode: runtime}`` (also each folder's runtime.json).

    With ``scratch`` (a folder outside DVC's outputs, keyed by the caller to the weights and settings), every finished
    frame is kept there as it completes (each file atomic; a frame counts as done when its ``times/<name>.json`` is
    written last): a rerun after a crash or ``kill -9`` restores only the frames that are missing or unreadable, then
    publishes all of them. The result is byte-identical to an uninterrupted run.
    """
    if not out_dirs:
        raise ValueError("predict_ladder: no TTA mode asked for")
    modes = tuple(out_dirs)
    rows = index_frames(index_csv)
    device = model_device(model)
    if accelerator is not None and torch.device(accelerator.device).type != device.type:
        raise ValueError(f"model is on {device} but the accelerator runs on {accelerator.device}; move it first")
    dtype = resolve_precision(tta.precision, device)
    is_main = accelerator is None or accelerator.is_main_process

    with ExitStack() as stack:
        tmps = {mode: stack.enter_context(_staging(Path(out_dirs[mode]), accelerator)) for mode in modes}
        for tmp in tmps.values():
            (tmp / "png16").mkdir(exist_ok=True)
            (tmp / "png8").mkdir(exist_ok=True)
        part_seconds: dict[str, float] = {}
        frames = restored = 0
        keep = Path(scratch) if scratch is not None else None
        with _share(rows, accelerator) as mine:
            desc = f"predict {'/'.join(modes)}"
            bar = tqdm(mine, desc=desc, unit="frame", disable=None if progress and is_main else True)
            for name, blur_path in bar:
                frames += 1
                done = _scratch_frame(keep, name, modes) if keep is not None else None
                if done is None:
                    img = read_image(blur_path)
                    seconds: dict[str, float] = {}
                    outs = restore_ladder(
                        model,
                        img,
                        modes=modes,
                        tile=tta.tile,
                        overlap=tta.overlap,
                        crops=tta.crops,
                        batch=tta.batch,
                        precision=tta.precision,
                        seconds=seconds,
                        tiling=tta.tiling,
                    )
                    restored += 1
                    root = {mode: (keep / mode if keep is not None else tmps[mode]) for mode in modes}
                    for mode, out in outs.items():
                        write_image16(root[mode] / "png16" / f"{name}.png", out)
                        write_image(root[mode] / "png8" / f"{name}.png", to_uint8(out))
                    if keep is not None:
                        write_json(keep / "times" / f"{name}.json", seconds)  # last: marks the frame complete
                    done = seconds
                for part, sec in done.items():
                    part_seconds[part] = part_seconds.get(part, 0.0) + sec
                if keep is not None:
                    for mode in modes:
                        for kind in ("png16", "png8"):
                            _link(keep / mode / kind / f"{name}.png", tmps[mode] / kind / f"{name}.png")
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
            runtimes[mode] = {
                "seconds_per_frame": seconds / max(frames, 1),
                "frames": frames,
                "device": describe_device(device) + (f" x{processes}" if processes > 1 else ""),
                "precision": "fp32" if dtype is None else precision_name(dtype),
                "tta": mode,
            }
            if is_main:
                write_json(tmps[mode] / "runtime.json", runtimes[mode])
    return runtimes


def _scratch_frame(keep: Path, name: str, modes: Sequence[str]) -> dict[str, float] | None:
    """The part timings of a frame finished in an earlier run, or None when any of its files is missing or unreadable
    (then it is restored again and its files replaced)."""
    times = keep / "times" / f"{name}.json"
    if not times.is_file():
        return None
    try:
        for mode in modes:
            read_image16(keep / mode / "png16" / f"{name}.png")
            read_image(keep / mode / "png8" / f"{name}.png")
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


def _scratch_root(parent: Path, weights: Path, tta, accelerator) -> Path:
    """``parent/<key>``, key = hash of the weights file and the TTA settings; other keys (stale frames) are removed."""
    import dataclasses
    import hashlib

    blob = hashlib.sha256(weights.read_bytes()).hexdigest() + json.dumps(dataclasses.asdict(tta), sort_keys=True)
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
) -> dict[str, dict]:
    """The ``infer@<model>`` stage: val-300 under every TTA mode of ``tta.ladder``, test frames under ``tta.submit``.

    Writes ``layout.predictions(model, mode, split)`` and returns ``{"<mode>/<split>": runtime}``. Frames are split
    across processes when launched with ``accelerate launch``. Finished frames are kept in
    ``layout.infer_scratch(model)/<key>/`` (``key``: a hash of the weights and the TTA settings; older keys are
    removed), so a rerun after an interruption restores only the missing frames. Without test frames (the
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
    model = prepare_model(load_model(weights), accelerator.device)
    scratch = _scratch_root(layout.infer_scratch(model_name), weights, tta, accelerator)
    val_modes = tuple(tta.ladder if modes is None else modes)
    jobs = {VAL_SPLIT: val_modes, "test300": (tta.submit,)}  # the val-300 ladder in one pass of its costliest mode
    if not test or not has_frames(layout.index("test300")):  # the development phase: no test frames yet
        del jobs["test300"]
    runtimes = {}
    for split, split_modes in jobs.items():
        done = predict_ladder(
            model,
            layout.index(split),
            {mode: layout.predictions(model_name, mode, split) for mode in split_modes},
            tta,
            accelerator=accelerator,
            progress=accelerator.is_main_process,
            scratch=scratch / split,
        )
        runtimes.update({f"{mode}/{split}": runtime for mode, runtime in done.items()})
    return runtimes
