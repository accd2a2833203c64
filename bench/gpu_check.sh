#!/usr/bin/env bash
# GPU check, ready to run on a CUDA machine (under 8 minutes): the tiny pipeline end to end with one process through
# `dvc repro` (the same path a user takes), then bench/gpu_check.py's figures (training steps/s of hinet-2x-deep,
# seconds per 720p frame per TTA mode of hinet-1x, bf16 vs fp32 agreement). Results land in ${OUT:-.}/gpu_check.json
# and the log; copy the figures into BENCHMARKS.md with the GPU model it prints.
#   bash bench/gpu_check.sh
set -euo pipefail
export DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
out=${OUT:-$(pwd)}
repo=$(pwd)
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device visible')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== tiny pipeline, 1 process, through dvc repro"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
(
  cd "$work/repo"
  git config user.email gpu@example.invalid && git config user.name gpu
  python .ci/tiny_params.py params.yaml
  git commit -qam "tiny params"
  dvc unfreeze pretrain
  start=$(date +%s)
  timeout 300 dvc repro
  echo "tiny dvc repro on GPU: $(( $(date +%s) - start )) s"
  python -m pipeline.submission check submissions/hinet_ntire_submission.zip --frames data/prepared/index/test300.csv
  grep -h '"device"' metrics/train/*.json | sort | uniq -c
)

echo "== GPU figures"
timeout 240 python bench/gpu_check.py --out "$out/gpu_check.json"
