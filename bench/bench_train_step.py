"""Training-step speed: forward, PSNR stage loss, backward, grad clipping and an Adam step, bf16 default vs fp32 eager.

Run: ``python bench/bench_train_step.py [--model hinet-1x --batch 4 --patch 128 --repeats 5 --profile 20]``.
The default path is what ``pipeline.train`` does: channels_last weights and inputs, bf16 autocast around the forward,
the loss in float32. Check: default step >= 3x faster than the fp32 eager step (NCHW, no autocast), same weights.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import header, interleaved, paired_ratio, spread, verdict

from pipeline.device import autocast, resolve_device, resolve_precision
from pipeline.losses import stage_loss
from pipeline.models import count_macs, create_model


class Step:
    """One optimisation step of a private copy of the model, in fp32 eager or the default bf16 + channels_last."""

    def __init__(self, model: torch.nn.Module, blur: torch.Tensor, sharp: torch.Tensor, *, fast: bool, device):
        self.model = copy.deepcopy(model).train()
        self.fast = fast
        self.dtype = resolve_precision("auto", device) if fast else None
        if fast:
            self.model = self.model.to(memory_format=torch.channels_last)
            blur = blur.contiguous(memory_format=torch.channels_last)
        self.blur, self.sharp, self.device = blur, sharp, device
        self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-4, betas=(0.9, 0.99))

    def __call__(self) -> float:
        with autocast(self.device, self.dtype):
            outputs = self.model(self.blur)
        loss = stage_loss([o.float() for o in outputs], self.sharp, (0.5, 0.5))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.01)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hinet-1x")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per case after one warm-up round")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS", help="print a torch.profiler table")
    args = ap.parse_args()

    device = resolve_device(args.device)
    header(f"train step {args.model} batch {args.batch}x3x{args.patch}x{args.patch}", device)
    torch.manual_seed(0)
    model = create_model(args.model).to(device)
    sharp = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    blur = (sharp + 0.05 * torch.randn_like(sharp)).clamp(0, 1)
    macs = count_macs(model, (args.patch, args.patch), batch=args.batch)
    print(f"{macs / 1e9:.1f} GMACs per forward (a step is about 3x that)")
    cases = {
        "fp32 eager": Step(model, blur, sharp, fast=False, device=device),
        "default (bf16+cl)": Step(model, blur, sharp, fast=True, device=device),
    }
    times = interleaved(cases, repeats=args.repeats, warmup=1, device=device)
    for name, ts in times.items():
        print(f"  {name:20s} {spread(ts)}  ~{6 * macs / min(ts) / 1e9:.0f} GFLOP/s (6 x MACs / best time)")
    ratio, lo = paired_ratio(times, "fp32 eager", "default (bf16+cl)")
    print(f"  speed-up: median of per-round ratios x{ratio:.2f}, ratio of best times x{lo:.2f}")
    verdict("train-step speed-up default vs fp32 eager", ratio, 3.0, higher_is_better=True, unit="x")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        step = cases["default (bf16+cl)"]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))


if __name__ == "__main__":
    main()
