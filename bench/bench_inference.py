"""Inference speed: the default path (the Restorer: auto precision + channels_last) against fp32 eager, same weights.

Run: ``python bench/bench_inference.py [--model hinet-1x --size 256 --repeats 5 --compile --batch 8 --profile]``;
the default run's members: ``--model hinet-0.5x --wf 16 --extra-blocks 1 --shape 192 320``.
Checks: effective GFLOP/s (2 x MACs / time) of the default path >= 85% of the measured peak of a large 3x3 convolution
in the default precision; its speed-up over fp32 eager >= 0.9 x the bf16 / fp32 conv peak ratio (what lower precision
alone can give on this CPU); PSNR >= 50 dB between the two outputs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch
from common import conv_case, header, interleaved, median, paired_ratio, psnr_db, spread, verdict

from pipeline.config import TTAConfig, load_params
from pipeline.device import autocast, resolve_device
from pipeline.inference import Restorer
from pipeline.models import count_macs, create_model


def _profile(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, rows: int) -> None:
    """Print the ops that take the time in one forward of the default path (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), autocast(x.device, dtype):
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hinet-1x")
    ap.add_argument("--size", type=int, default=256, help="square input side (default 256)")
    ap.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), help="input height and width (instead of --size)")
    ap.add_argument("--wf", type=int, help="override the variant's width (as models.<m>.width)")
    ap.add_argument("--extra-blocks", type=int, help="override the variant's extra blocks (models.<m>.extra_blocks)")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per case after one warm-up round")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="also time the Restorer with tta.compile (torch.compile)")
    ap.add_argument("--batch", type=int, default=0, help="also time a bf16 forward of this batch size (per image)")
    ap.add_argument(
        "--cast-weights", action="store_true", help="also time the Restorer with tta.cast_weights (no per-call casts)"
    )
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS", help="print a torch.profiler table")
    ap.add_argument(
        "--break-even",
        nargs="*",
        metavar="MODE",
        help="with --compile: time one frame under these TTA modes (default: x8+crops) with params.yaml's tta (crops, "
        "batch) with and without tta.compile, first call (compilation) apart; print after how many frames it pays",
    )
    args = ap.parse_args()

    device = resolve_device(args.device)
    h, w = args.shape or (args.size, args.size)
    overrides = {k: v for k, v in (("wf", args.wf), ("extra_blocks", args.extra_blocks)) if v is not None}
    header(f"inference {args.model} {overrides or ''} 1x3x{h}x{w}", device)
    torch.manual_seed(0)
    # Random (PyTorch default) init: its residual over the input has a std of ~0.02, like a trained deblurrer's,
    # so the outputs are not degenerate and the PSNR between precisions is meaningful.
    fp32 = create_model(args.model, **overrides).eval().to(device)
    fast = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
    tta = TTAConfig(tile=max(h, w, 256), overlap=32)  # one tile; the default precision, auto
    restorer = Restorer(fast, tta)
    dtype = restorer.dtype
    x = torch.rand(1, 3, h, w, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    macs = count_macs(fp32, (h, w))
    print(f"{macs / 1e9:.2f} GMACs per forward; default precision {dtype}")

    def eager_fp32():
        return fp32(x)[-1]

    def default_path():
        return restorer.restore(x)["plain"]

    def bf16_forward():
        with autocast(device, dtype):
            return fast(x_cl)[-1]

    cases = {"fp32 eager": eager_fp32, "default Restorer": default_path, "bf16+cl forward": bf16_forward}
    # The Restorer's speed options (TTA keys), each alone and both together: the product's code path, not a copy.
    chosen = [k for k, on in (("cast_weights", args.cast_weights), ("compile", args.compile)) if on]
    option_sets = [(k,) for k in chosen] + ([tuple(chosen)] if len(chosen) == 2 else [])
    options = {}
    for keys in option_sets:
        name = "Restorer " + "+".join(keys)
        options[name] = Restorer(fast, dataclasses.replace(tta, **dict.fromkeys(keys, True)))
        cases[name] = lambda r=options[name]: r.restore(x)["plain"]
    per_image = {name: 1 for name in cases}
    if args.batch > 1:
        xb = x.repeat(args.batch, 1, 1, 1).contiguous(memory_format=torch.channels_last)

        def batched():
            with autocast(device, dtype):
                return fast(xb)[-1]

        cases[f"bf16+cl batch {args.batch}"] = batched
        per_image[f"bf16+cl batch {args.batch}"] = args.batch
    peak_fn, peak_flops = conv_case(dtype or torch.float32, device)
    peak32_fn, _ = conv_case(torch.float32, device)
    cases["conv peak, default dtype"] = peak_fn
    cases["conv peak, fp32"] = peak32_fn

    with torch.inference_mode():
        ref = eager_fp32().clamp(0, 1)
        out = default_path()
        warm = 3 if args.compile else 1  # compilation happens in the first calls
        times = interleaved(cases, repeats=args.repeats, warmup=warm, device=device)
    peak = peak_flops / median(times.pop("conv peak, default dtype")) / 1e9
    peak32 = peak_flops / median(times.pop("conv peak, fp32")) / 1e9
    print(
        f"conv peak (1x256x128x128 -> 256, 3x3, channels_last, median): {dtype} {peak:.0f} GFLOP/s, "
        f"fp32 {peak32:.0f} GFLOP/s; ratio {peak / peak32:.2f}x = what lower precision alone can gain"
    )
    base = median(times["fp32 eager"])
    for name, ts in times.items():
        sec = median(ts) / per_image[name]
        gflops = 2 * macs / sec / 1e9
        print(
            f"  {name:26s} {spread(ts)}  per image {sec:.4f}s  x{base / sec:.2f} vs fp32  "
            f"{gflops:.0f} GFLOP/s = {100 * gflops / peak:.0f}% of peak"
        )
    ratio, best = paired_ratio(times, "fp32 eager", "default Restorer")
    print(f"  speed-up default vs fp32: median of per-round ratios x{ratio:.2f}, ratio of best times x{best:.2f}")
    verdict(
        "speed-up default vs fp32 eager, over the conv peak ratio", ratio / (peak / peak32), 0.9, higher_is_better=True
    )
    verdict("PSNR default vs fp32 output", psnr_db(out, ref), 50.0, higher_is_better=True, unit=" dB")
    eff = 2 * macs / median(times["default Restorer"]) / 1e9
    verdict("default path share of the measured conv peak", 100 * eff / peak, 85.0, higher_is_better=True, unit="%")
    for name, option in options.items():
        option_out = option.restore(x)["plain"]
        speed, _ = paired_ratio(times, "default Restorer", name)
        print(
            f"  {name}: x{speed:.3f} vs the default Restorer (median of per-round ratios); output vs fp32 "
            f"{psnr_db(option_out, ref):.2f} dB, vs the default {psnr_db(option_out, out):.2f} dB"
        )
    if args.profile:
        _profile(fast, x_cl, dtype, args.profile)
    if args.compile and args.break_even is not None:
        # The default run's TTA (params.yaml: crops, batch), with this bench's one-tile plan.
        run_tta = dataclasses.replace(load_params("params.yaml").tta, tile=tta.tile, overlap=tta.overlap)
        _break_even(fast, run_tta, x, tuple(args.break_even) or ("x8+crops",), args.repeats, device)


def _break_even(model: torch.nn.Module, tta: TTAConfig, x: torch.Tensor, modes: tuple, repeats: int, device) -> None:
    """Frames of this size a process must restore under ``modes`` before tta.compile has paid for its compilations
    (one per patch shape: tiles, transposed tiles, crops): (first-call excess) / (per-frame saving)."""
    restorers = {"default": Restorer(model, tta), "compile": Restorer(model, dataclasses.replace(tta, compile=True))}
    first = {}
    for name, r in restorers.items():
        t0 = time.perf_counter()
        r.restore(x, modes)
        first[name] = time.perf_counter() - t0
    with torch.inference_mode():
        times = interleaved(
            {name: (lambda r=r: r.restore(x, modes)) for name, r in restorers.items()},
            repeats=repeats,
            warmup=1,
            device=device,
        )
    steady = {name: median(ts) for name, ts in times.items()}
    saving = steady["default"] - steady["compile"]
    excess = (first["compile"] - steady["compile"]) - (first["default"] - steady["default"])
    print(
        f"  {'+'.join(modes)} per frame: default {steady['default']:.3f} s, compile {steady['compile']:.3f} s "
        f"(x{steady['default'] / steady['compile']:.2f}); first frame {first['default']:.1f} s vs "
        f"{first['compile']:.1f} s (compilation ~{excess:.0f} s)"
    )
    if saving > 0:
        print(f"  tta.compile pays after ~{excess / saving:.0f} frames of this size in one process")
    else:
        print("  tta.compile does not pay at this size: no per-frame saving")


if __name__ == "__main__":
    main()
