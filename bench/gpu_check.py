"""GPU measurements for BENCHMARKS.md (run by bench/gpu_check.sh on a CUDA machine).

1. Training steps/s of ``hinet-2x-deep`` at 256 px, global batch 8, bf16 autocast + channels_last (Adam, PSNR loss,
   the real training step: forward, two-stage loss, backward, optimizer step).
2. Seconds per 1280x720 frame of ``hinet-1x`` for plain, x8 and x8+crops (300 crops of 256 px), bf16, batch 8,
   timed per mode alone and as one ladder pass.
3. bf16 against fp32 agreement: PSNR between the two outputs of a random-weight ``hinet-1x`` on a real photo.
Prints one line per figure with the GPU model; writes them to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pipeline.config import CropsConfig, TTAConfig
from pipeline.fileio import to_uint8
from pipeline.inference import Restorer
from pipeline.losses import stage_loss
from pipeline.metrics import psnr
from pipeline.models import create_model


def _sync() -> None:
    torch.cuda.synchronize()


def train_steps_per_s(steps: int = 20) -> float:
    torch.manual_seed(0)
    model = create_model("hinet-2x-deep").cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
    x = torch.rand(8, 3, 256, 256, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.rand(8, 3, 256, 256, device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outs = model(x)
        loss = stage_loss([o.float() for o in outs], y, (0.5, 0.5), kind="psnr")
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync()
    return steps / (time.perf_counter() - t0)


def frame_seconds() -> dict[str, float]:
    torch.manual_seed(0)
    model = create_model("hinet-1x").cuda().eval().to(memory_format=torch.channels_last)
    frame = torch.rand(3, 720, 1280, device="cuda")
    crops = CropsConfig(n=300, size=256, transforms="all8", seed=0)
    restorer = Restorer(model, TTAConfig(precision="bf16", batch=8, crops=crops))
    out = {}
    restorer.restore(frame, ("plain",))  # warm-up
    for mode in ("plain", "x8", "x8+crops"):
        _sync()
        t0 = time.perf_counter()
        restorer.restore(frame, (mode,))
        _sync()
        out[mode] = time.perf_counter() - t0
    _sync()
    t0 = time.perf_counter()
    restorer.restore(frame, ("plain", "x8", "x8+crops"))
    _sync()
    out["ladder plain+x8+x8+crops (one pass)"] = time.perf_counter() - t0
    return out


def bf16_agreement() -> float:
    import skimage.data

    torch.manual_seed(0)
    model = create_model("hinet-1x").cuda().eval().to(memory_format=torch.channels_last)
    img = skimage.data.astronaut()
    fp32 = Restorer(model, TTAConfig(precision="fp32")).restore(img)["plain"]
    bf16 = Restorer(model, TTAConfig(precision="bf16")).restore(img)["plain"]
    return psnr(to_uint8(bf16), to_uint8(fp32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device visible; bench/gpu_check.py measures GPU figures only")
    gpu = torch.cuda.get_device_name(0)
    results = {"gpu": gpu, "torch": torch.__version__}
    results["train_steps_per_s_hinet2xdeep_256px_batch8_bf16"] = round(train_steps_per_s(), 3)
    print(
        f"[{gpu}] hinet-2x-deep train, 256 px, global batch 8, bf16: "
        f"{results['train_steps_per_s_hinet2xdeep_256px_batch8_bf16']} steps/s",
        flush=True,
    )
    secs = frame_seconds()
    results["seconds_per_720p_frame_hinet1x_bf16"] = {k: round(v, 3) for k, v in secs.items()}
    for mode, s in secs.items():
        print(f"[{gpu}] hinet-1x 1280x720 {mode}: {s:.3f} s/frame", flush=True)
    results["bf16_vs_fp32_psnr_db"] = round(bf16_agreement(), 2)
    print(f"[{gpu}] bf16 vs fp32 output of hinet-1x (8-bit): {results['bf16_vs_fp32_psnr_db']} dB PSNR", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
