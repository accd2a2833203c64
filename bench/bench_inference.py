"""Inference speed: the default path (the Restorer: auto precision + channels_last) against fp32 eager, same weights.

Run: ``python bench/bench_inference.py [--model hinet-1x --size 256 --repeats 5 --compile --batch 8 --profile]``.
Checks: default path >= 4x faster than fp32 eager with PSNR >= 50 dB between the two outputs; effective GFLOP/s
(2 x MACs / time) against the measured peak of a large bf16 3x3 convolution, aim >= 60%.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import conv_case, header, interleaved, median, paired_ratio, psnr_db, spread, verdict

from pipeline.config import TTAConfig
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
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per case after one warm-up round")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the bf16 channels_last model")
    ap.add_argument("--batch", type=int, default=0, help="also time a bf16 forward of this batch size (per image)")
    ap.add_argument("--bf16-weights", action="store_true", help="also time a bf16-weight copy without autocast")
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS", help="print a torch.profiler table")
    args = ap.parse_args()

    device = resolve_device(args.device)
    header(f"inference {args.model} 1x3x{args.size}x{args.size}", device)
    torch.manual_seed(0)
    # Random (PyTorch default) init: its residual over the input has a std of ~0.02, like a trained deblurrer's,
    # so the outputs are not degenerate and the PSNR between precisions is meaningful.
    fp32 = create_model(args.model).eval().to(device)
    fast = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
    restorer = Restorer(fast, TTAConfig(tile=max(args.size, 256), overlap=32))  # the default precision, auto
    dtype = restorer.dtype
    x = torch.rand(1, 3, args.size, args.size, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    macs = count_macs(fp32, (args.size, args.size))
    print(f"{macs / 1e9:.2f} GMACs per forward; default precision {dtype}")

    def eager_fp32():
        return fp32(x)[-1]

    def default_path():
        return restorer.restore(x)["plain"]

    def bf16_forward():
        with autocast(device, dtype):
            return fast(x_cl)[-1]

    cases = {"fp32 eager": eager_fp32, "default Restorer": default_path, "bf16+cl forward": bf16_forward}
    if args.compile:
        compiled = torch.compile(fast)

        def compiled_forward():
            with autocast(device, dtype):
                return compiled(x_cl)[-1]

        cases["bf16+cl torch.compile"] = compiled_forward
    if args.bf16_weights:
        half = copy.deepcopy(fast).to(dtype or torch.float32)
        x_half = x_cl.to(dtype or torch.float32)
        cases["bf16 weights, no autocast"] = lambda: half(x_half)[-1]
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
    verdict("speed-up default path vs fp32 eager", ratio, 4.0, higher_is_better=True, unit="x")
    verdict("PSNR default vs fp32 output", psnr_db(out, ref), 50.0, higher_is_better=True, unit=" dB")
    eff = 2 * macs / median(times["default Restorer"]) / 1e9
    verdict("default path share of the measured conv peak", 100 * eff / peak, 60.0, higher_is_better=True, unit="%")
    if args.profile:
        _profile(fast, x_cl, dtype, args.profile)


if __name__ == "__main__":
    main()
