"""Deblur your own images: ``python -m pipeline.restore --weights W --input FILE_OR_DIR --output DIR``.

``W`` is one of our ``.safetensors`` files or a public-release HINet ``.pth``; ``--input`` is an image or a directory
(scanned non-recursively, sorted, image suffixes only). Each result is written atomically as ``DIR/<stem>.png``
(8-bit RGB). Failure policy: an unreadable input is reported on stderr with its file name and skipped, the other
images are still restored, and the command exits with status 1 listing every failure at the end; bad arguments
(missing weights, empty input directory, clashing output names) stop it before any image is restored, with one line
``error: <path>: <problem>`` and status 1 (``pipeline.cli.USER_ERROR_EXIT``, as every command of the project).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from pipeline.cli import reports_user_errors
from pipeline.config import CROP_TRANSFORMS, PRECISIONS, TTA_MODES, CropsConfig, TTAConfig
from pipeline.device import prepare_model, resolve_device
from pipeline.errors import PipelineError
from pipeline.fileio import ImageReadError, read_image, to_uint8, write_image
from pipeline.inference import Restorer

__all__ = ["IMAGE_SUFFIXES", "RestoreError", "find_inputs", "main", "output_paths", "parse_args"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class RestoreError(PipelineError):
    """``--input`` or ``--output`` cannot work (nothing to restore, two results with one name, an input overwritten);
    the message names the path and the fix."""


def find_inputs(path: str | Path) -> list[Path]:
    """The image files to restore: ``path`` itself, or the sorted images directly inside a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RestoreError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this directory")
        return files
    raise RestoreError(f"{path}: no such file or directory")


def output_paths(inputs: Sequence[Path], out_dir: Path) -> list[Path]:
    """``out_dir/<stem>.png`` for each input; refuses two inputs with one stem and overwriting an input."""
    outs = [out_dir / f"{p.stem}.png" for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, outs, strict=True):
        if dst in seen:
            raise RestoreError(f"{seen[dst]} and {src} would both be written to {dst}; rename one of them")
        seen[dst] = src
    sources = {p.resolve() for p in inputs}
    clobbered = [str(d) for d in outs if d.resolve() in sources]
    if clobbered:
        raise RestoreError(f"output would overwrite input file(s) {clobbered[:3]}; choose another --output directory")
    return outs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.restore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="our .safetensors or a public-release HINet .pth")
    parser.add_argument("--input", required=True, help="an image file or a directory of images")
    parser.add_argument("--output", required=True, help="directory for the restored <stem>.png files")
    parser.add_argument("--tta", default="plain", choices=TTA_MODES, help="test-time augmentation (default: plain)")
    parser.add_argument("--crops", type=int, default=CropsConfig.n, help="random crops for the crop TTA modes")
    parser.add_argument("--crop-size", type=int, default=CropsConfig.side, help="random crop side (px)")
    parser.add_argument("--crop-transforms", default=CropsConfig.transforms, choices=sorted(CROP_TRANSFORMS))
    parser.add_argument("--seed", type=int, default=CropsConfig.seed, help="seed of the random crops")
    parser.add_argument("--tile", type=int, default=256, help="tile size (bounds memory)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    parser.add_argument("--batch", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return parser.parse_args(argv)


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Restore every input; return 0, or 1 when some inputs could not be read. Bad arguments, missing or unreadable
    weights and an unusable output folder are user errors (one line, exit 1) raised before any image is restored."""
    from pipeline.models import load_model

    args = parse_args(argv)
    inputs = find_inputs(args.input)
    outputs = output_paths(inputs, Path(args.output))
    device = resolve_device(args.device)
    crops = CropsConfig(n=args.crops, side=args.crop_size, transforms=args.crop_transforms, seed=args.seed)
    tta = TTAConfig(
        tile=args.tile, overlap=args.overlap, batch=args.batch, precision=args.precision, ladder=(args.tta,),
        submit=args.tta, crops=crops,
    )  # fmt: skip
    restorer = Restorer(prepare_model(load_model(args.weights), device), tta)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    if not os.access(args.output, os.W_OK | os.X_OK):  # fail before the model runs, naming the folder
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), args.output)
    failures: list[str] = []
    bar = tqdm(list(zip(inputs, outputs, strict=True)), desc="restore", unit="image", disable=None)
    for src, dst in bar:
        bar.set_postfix_str(src.name)
        try:
            img = read_image(src)
        except ImageReadError as exc:
            failures.append(str(exc))
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            continue
        out = restorer.restore(img, (args.tta,), progress=len(inputs) == 1)[args.tta]
        write_image(dst, to_uint8(out))
    restored = len(inputs) - len(failures)
    print(f"restored {restored} of {len(inputs)} image(s) into {args.output}", file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} input(s) could not be read:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
