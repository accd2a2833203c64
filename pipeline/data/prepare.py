"""The data stage: get a tree (synthesize the embedded REDS-like one, or use a download of REDS, GoPro, SIDD or
Rain13K: ``data.source`` names the task, ``pipeline.tasks`` its indexer), validate and index it, extract training
patches, and report statistics and a contact sheet.

Outputs (all atomic; on any failure none of them is left looking finished):
``paths.data/index/{train,val,val300,test300}.csv`` (paths relative to the data root, with each file's md5; other
tasks than REDS add the ``task`` and ``test_set`` columns), ``paths.data/blocks/`` (SIDD: the .mat blocks as PNGs),
``paths.data/index/root.json`` (the root), ``paths.data/index/val300.json`` (the val-300 input scores' means),
``paths.data/index/val300_inputs.csv`` (each val-300 input's scores, computed only here),
``paths.data/shards/`` (training pairs in a few block-compressed files, with ``index.json``; an index of no shards
unless ``data.store`` is ``shards``), ``paths.data/patches/index.csv`` (empty unless ``data.store`` is ``patches``),
``paths.data/stats.json``, ``paths.metrics/data.json``
(same statistics) and ``paths.plots/data_contact_sheet.png``. Later stages depend on single files of this folder
(training: the train and val-300 index, the val-300 input scores, the patches), and only ``root.json`` names the root,
so moving the data set (same files, new ``data.root``) reruns ``prepare`` and nothing after it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.config import DataConfig, PathsConfig
from pipeline.data.degrade import INPUT_LABELS, input_suffix
from pipeline.data.layouts import IndexOptions, LayoutError
from pipeline.data.patches import PATCH_COLUMNS, extract_patches
from pipeline.data.pool import load_pool
from pipeline.data.reds import ROOT_FILE, relative_index
from pipeline.data.shards import write_shards
from pipeline.data.synth import manifest_matches, synthesize_reds
from pipeline.fileio import atomic_dir, read_image, write_image, write_json
from pipeline.layout import Layout
from pipeline.records import DataCounts, DataRecord, InputSummary, MeanScores, PatchSettings, ShardSummary
from pipeline.scoring import score_inputs, write_input_scores
from pipeline.tasks import SCORES, Task, get_task

__all__ = ["contact_sheet", "input_scores", "prepare"]

_TILE_WIDTH = 320
_DERIVED = "blocks"  # paths.data/blocks: files an indexer derives from the download (SIDD's .mat blocks as PNGs)


def input_scores(table: pd.DataFrame, *, workers: int = 2) -> tuple[MeanScores, pd.DataFrame]:
    """Mean PSNR / SSIM / SSIM3D of the degraded inputs against their targets under the index's task protocol (REDS:
    RGB, no border crop), and the per-frame scores they average (written once here; evaluate, ensemble and the
    leaderboard read them)."""
    if table.empty:
        raise ValueError("input_scores: the frame table is empty")
    per_image = score_inputs(table, workers=workers)
    means = {k: float(per_image[k].mean()) for k in SCORES}
    return MeanScores(**means, frames=len(per_image)), per_image


def _label(img: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, img])


def contact_sheet(
    table: pd.DataFrame, pairs: int, task: Task | None = None, input_label: str | None = None
) -> np.ndarray:
    """An RGB uint8 grid of ``pairs`` (input | target) rows spread over ``table``, labelled with name and PSNR (under
    ``task``'s protocol; default REDS)."""
    task = task or get_task("reds")
    input_label = input_label or task.input_label  # the embedded set's degradation names its own ("noisy", ...)
    if table.empty or pairs < 1:
        raise ValueError(f"contact_sheet: need a non-empty table and pairs >= 1, got {len(table)} rows, {pairs}")
    picks = np.unique(np.linspace(0, len(table) - 1, min(pairs, len(table))).round().astype(int))
    rows = []
    for i in picks:
        r = table.iloc[int(i)]
        blur, sharp = read_image(r["blur_path"]), read_image(r["sharp_path"])
        score = task.score(blur, sharp, with_ssim=False)["psnr"]
        h = round(blur.shape[0] * _TILE_WIDTH / blur.shape[1])
        blur_t = cv2.resize(blur, (_TILE_WIDTH, h), interpolation=cv2.INTER_AREA)
        sharp_t = cv2.resize(sharp, (_TILE_WIDTH, h), interpolation=cv2.INTER_AREA)
        gap = np.full((h + 22, 4, 3), 255, np.uint8)
        rows.append(
            np.hstack([_label(blur_t, f"{r['name']} {input_label}  {score:.2f} dB"), gap, _label(sharp_t, "sharp")])
        )
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(rows)


def _remove_outputs(paths: PathsConfig) -> None:
    """Delete this stage's previous outputs first, so a failed run cannot leave stale ones that look current."""
    shutil.rmtree(paths.data, ignore_errors=True)
    layout = Layout(paths)
    for f in (layout.data_metrics, layout.data_contact_sheet):
        f.unlink(missing_ok=True)


def _at_final(table: pd.DataFrame, tmp: Path, final: Path) -> pd.DataFrame:
    """``table`` with paths of files derived under ``tmp`` (SIDD's blocks) pointing where the atomic rename puts them
    (absolute); the tables keep the ``tmp`` paths while the stage still reads them."""
    before, after = str(tmp.resolve()), str(final.resolve())
    out = table.copy()
    for col in ("blur_path", "sharp_path"):
        out[col] = [after + p[len(before) :] if p.startswith(before + "/") else p for p in out[col]]
    return out


def _nested(inner: Path, outer: Path) -> Path | None:
    """``inner`` relative to ``outer`` when it lies inside it, else None."""
    inner, outer = inner.resolve(), outer.resolve()
    return inner.relative_to(outer) if inner.is_relative_to(outer) and inner != outer else None


def prepare(cfg: DataConfig, paths: PathsConfig) -> DataRecord:
    """Run the data stage and return its statistics (also written to ``paths.metrics/data.json``, a
    :class:`pipeline.records.DataRecord`).

    With ``source=synthetic`` the tree is rendered into ``paths.synthetic_reds``; when that lies inside
    ``paths.data`` it is rebuilt with it (same atomic rename), otherwise it is reused while its manifest matches.
    Any other source is indexed by its task's indexer (``pipeline.tasks``), which stops with one error naming every
    bad file before anything is written.
    """
    task = get_task(cfg.source)
    layout = Layout(paths)
    data_dir = Path(paths.data)
    synth_root = Path(paths.synthetic_reds)
    nested = _nested(synth_root, data_dir) if cfg.source == "synthetic" else None
    if cfg.source == "synthetic":
        load_pool()  # every pool image against its sha256 and licence record, before anything is touched
    _remove_outputs(paths)
    root = synth_root if cfg.source == "synthetic" else Path(cfg.root)
    if cfg.source == "synthetic" and nested is None and not manifest_matches(cfg.synth, synth_root):
        synthesize_reds(cfg.synth, synth_root, workers=cfg.workers)
    with atomic_dir(data_dir) as tmp:
        built = root
        if nested is not None:
            built = synthesize_reds(cfg.synth, tmp / nested, workers=cfg.workers)
        synth_task = cfg.synth.task if cfg.source == "synthetic" else None  # the embedded set's degradation
        blur_ext = input_suffix(synth_task or "deblur_jpeg")  # REDS Track 2 inputs are JPEG; lossless tasks PNG
        tables = task.index(built, IndexOptions(cfg.workers, tmp / _DERIVED, cfg.sidd_block, blur_ext))
        if tables["val300"].empty:
            raise LayoutError(f"{root}: no val-300 frames (val sequences need at least 10 frames)")
        (tmp / "index").mkdir()
        for split, table in tables.items():
            final = _at_final(table, tmp / _DERIVED, data_dir / _DERIVED)
            relative_index(final, built).to_csv(tmp / "index" / f"{split}.csv", index=False)
        write_json(tmp / "index" / ROOT_FILE, {"root": str(root)})
        patches = 0
        shards = write_shards(
            tables["train"] if cfg.store == "shards" else tables["train"].iloc[:0],
            tmp / "shards",
            frames_per_shard=cfg.shard_frames,
            block=cfg.shard_block,
            workers=cfg.workers,
        )
        if cfg.store == "patches":
            patch_index = extract_patches(
                tables["train"],
                tmp / "patches",
                patch_size=cfg.patch_size,
                stride=cfg.patch_stride,
                fmt=cfg.patch_format,
                workers=cfg.workers,
                final_dir=data_dir / "patches",
            )
            patches = len(patch_index)
        else:  # an empty patch index: training reads frames (and can depend on this file either way)
            (tmp / "patches").mkdir()
            pd.DataFrame(columns=PATCH_COLUMNS).to_csv(tmp / "patches" / "index.csv", index=False)
        val300 = tables["val300"]
        inputs, per_input = input_scores(val300, workers=cfg.workers)
        per_set = val300["test_set"].value_counts(sort=False).items() if "test_set" in val300 else None
        stats = DataRecord(
            source=cfg.source,
            task=task.name,
            frame_height=int(val300["height"].iloc[0]),
            frame_width=int(val300["width"].iloc[0]),
            counts=DataCounts(
                train_sequences=int(tables["train"]["seq"].nunique()),
                train=len(tables["train"]),
                val_sequences=int(tables["val"]["seq"].nunique()),
                val=len(tables["val"]),
                val300=len(val300),
                test300=len(tables["test300"]),
                patches=patches,
                test_sets=None if per_set is None else {k: int(v) for k, v in per_set},
            ),
            store=cfg.store,
            shards=ShardSummary(files=len(shards["shards"]), bytes=shards["bytes"], block=cfg.shard_block),
            patch=PatchSettings(size=cfg.patch_size, stride=cfg.patch_stride, format=cfg.patch_format),
            input=inputs,
            # the leaderboard's task label: synthetic/<degradation>
            synth_task=synth_task if synth_task not in (None, "deblur_jpeg") else None,
        )
        sheet = contact_sheet(val300, cfg.contact_sheet_pairs, task, INPUT_LABELS[synth_task] if synth_task else None)
        stats.write(tmp / "stats.json")
        InputSummary(input=stats.input).write(tmp / "index" / layout.input_summary.name)
        write_input_scores(tmp / "index" / layout.input_scores.name, per_input)
    stats.write(layout.data_metrics)
    write_image(layout.data_contact_sheet, sheet)
    return stats
