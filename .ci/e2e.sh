#!/usr/bin/env bash
# End-to-end smoke run of the whole DVC pipeline on tiny params, in a temporary clone of the committed tree.
# Asserts: the submission zip validates, the leaderboard has its rows, a rerun is a no-op, a TTA experiment retrains
# nothing, two processes match one, the development phase (no test/) packages a val-300 zip, the restore CLI works on
# a real photo, the experiment leaderboard merges, each embedded task (deblur, denoise, derain) and each real layout
# (GoPro, SIDD, Rain13K: small trees in the download's layout) runs end to end.
set -euo pipefail
export DVC_NO_ANALYTICS=1
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
cd "$work/repo"
git config user.email ci@example.invalid && git config user.name ci
python .ci/tiny_params.py params.yaml
git commit -qam "tiny params for the smoke run"

echo "== dvc repro (tiny), retraining the frozen base as a user would"
dvc unfreeze pretrain
dvc repro
python - <<'PY'
import json
prov = json.load(open("pretrained/base.json"))
assert prov["steps"] == 20 and prov["val_curve"] and prov["data_fingerprint"] and prov["cpu"], prov
print("pretrained base provenance OK:", {k: prov[k] for k in ("steps", "wall_time_s", "cpu", "final_gain_db")})
PY
python -m pipeline.submission check submissions/hinet_ntire_submission.zip --frames data/prepared/index/test300.csv
python - <<'PY'
import pandas as pd
from pipeline.config import load_params
params = load_params("params.yaml")
df = pd.read_csv("submissions/leaderboard.csv")
entries = set(df["entry"])
expected = {"input", "base/plain", "ensemble"} | {f"{m}/{t}" for m in params.models for t in params.tta.ladder}
assert entries == expected, sorted(entries ^ expected)
steps = pd.read_csv("submissions/ladder_steps.csv")
# input -> base/plain; per member base/plain -> plain, the ladder from the input, its submit mode -> the ensemble
assert len(steps) == 1 + len(params.models) * (len(params.tta.ladder) + 2), steps
assert (steps["before"] == "base/plain").sum() == len(params.models), steps
assert steps["ci_low"].le(steps["gain_db"]).all() and steps["gain_db"].le(steps["ci_high"]).all()
print(f"leaderboard OK: {len(df)} rows, {len(steps)} paired steps")
PY

echo "== no-op rerun"
out=$(dvc repro)
echo "$out" | grep -q "Data and pipelines are up to date" || { echo "$out"; echo "rerun was not a no-op"; exit 1; }

echo "== narrow deps: editing TTA code leaves every trained model up to date"
echo "# touched by the CI smoke run" >> pipeline/inference.py
status=$(dvc status)
echo "$status" | grep -q "infer@" || { echo "$status"; echo "infer@ did not notice pipeline/inference.py"; exit 1; }
if echo "$status" | grep -q "train@\|pretrain"; then echo "$status"; echo "a TTA code edit made training stale"; exit 1; fi
git checkout -q pipeline/inference.py

echo "== TTA experiment retrains nothing"
dvc exp run -S tta.crops.n=4 2>&1 | tee exp.log
if grep -q "Running stage 'train@" exp.log; then echo "a TTA experiment retrained a model"; exit 1; fi
grep -q "Running stage 'infer@" exp.log
dvc exp show --no-pager > /dev/null
python -m pipeline.leaderboard merge --out merged.csv
python -c "import pandas as pd; df = pd.read_csv('merged.csv'); assert len(df) > 0; print('merged rows', len(df))"

echo "== DVCLive metrics in dvc exp show"
dvc exp show --json > exp.json
python - <<'PY'
import json
text = json.dumps(json.load(open("exp.json")))
assert "dvclive/wd_s1/metrics.json" in text and '"psnr"' in text, "DVCLive metrics missing from dvc exp show"
print("dvc exp show has dvclive/wd_s1/metrics.json")
PY

echo "== two gloo processes under dvc (launch.processes=2): train and infer, the result validates"
cp submissions/leaderboard.csv leaderboard_1p.csv
dvc exp run -S launch.processes=2 2>&1 | tee exp2.log
grep -q "Running stage 'train@wd_s1'" exp2.log && grep -q "Running stage 'infer@wd_s1'" exp2.log
python -m pipeline.submission check submissions/hinet_ntire_submission.zip --frames data/prepared/index/test300.csv
python - <<'PY'
import json
m = json.load(open("metrics/train/wd_s1.json"))
assert (m["processes"], m["per_process_batch"], m["global_batch"]) == (2, 1, 2), m
assert len(set(m["rank_weight_hashes"])) == 1
rt = json.load(open("outputs/predictions/wd_s1/plain/val300/runtime.json"))
assert rt["device"].endswith("x2"), rt
print("two processes: per-process batch 1, global batch 2, ranks agree; inference split over 2 processes")
import pandas as pd
one = pd.read_csv("leaderboard_1p.csv").set_index("entry")["psnr"]
two = pd.read_csv("submissions/leaderboard.csv").set_index("entry")["psnr"]
assert set(one.index) == set(two.index), sorted(set(one.index) ^ set(two.index))
diff = (two - one.reindex(two.index)).abs()
print(f"1 vs 2 processes, same global batch: largest leaderboard PSNR difference {diff.max():.4f} dB")
assert diff.max() < 0.05, diff.sort_values()
PY

echo "== development phase: no test/ folder, a val-300 zip (training untouched: its inputs did not change)"
dvc exp run -S data.synth.test_sequences=0 -S package.split=val300 2>&1 | tee exp3.log
if grep -q "Running stage 'train@" exp3.log; then echo "removing test/ retrained a model"; exit 1; fi
grep -q "no test/ folder yet" exp3.log
python -m pipeline.submission check submissions/hinet_ntire_submission.zip --frames data/prepared/index/val300.csv
python -c "import json; s = json.load(open('metrics/data.json')); assert s['counts']['test300'] == 0 and s['store'] == 'shards', s"

echo "== restore CLI on a real photo"
python - <<'PY'
import cv2, skimage.data
cv2.imwrite("photo.jpg", cv2.cvtColor(skimage.data.astronaut()[:200, :300], cv2.COLOR_RGB2BGR))
PY
python -m pipeline.restore --weights models/wd_s1.safetensors --input photo.jpg --output restored --tta x8
test -s restored/photo.png
echo "== embedded tasks: deblur (PNG), denoise, derain, each through prepare -> pretrain -> train -> evaluate -> leaderboard"
# The data path is what differs per task: the TTA ladder is plain only and training 10 steps (TTA is tested above).
git checkout -q params.yaml  # the committed tiny params
cheap=(-S "tta.ladder=[plain]" -S tta.submit=plain -S pretrain.steps=10)
for m in $(python -c "from pipeline.config import load_params; print(*load_params('params.yaml').models)"); do
  cheap+=(-S "models.$m.steps=10")
done
for task in deblur denoise derain; do
  git checkout -q params.yaml  # one task per run, not stacked on the previous one
  start=$SECONDS
  dvc exp run -S data.synth.task=$task "${cheap[@]}" > "exp_$task.log" 2>&1 || { tail -50 "exp_$task.log"; exit 1; }
  grep -q "Running stage 'prepare'" "exp_$task.log" && grep -q "Running stage 'train@wd_s1'" "exp_$task.log"
  TASK=$task python - <<'PY'
import json, os
import pandas as pd
from pipeline.config import load_params
from pipeline.data.reds import read_index
from pipeline.data.synth import manifest_task
task, params = os.environ["TASK"], load_params("params.yaml")
assert params.data.synth.task == task and manifest_task(params.paths.synthetic_reds) == task
assert read_index("data/prepared/index/val300.csv")["blur_path"].str.endswith(".png").all()
entries = set(pd.read_csv("submissions/leaderboard.csv")["entry"])
expected = {"input", "base/plain", "ensemble"} | {f"{m}/{t}" for m in params.models for t in params.tta.ladder}
assert entries == expected, sorted(entries ^ expected)
data = json.load(open("metrics/data.json"))
print(f"{task}: manifest names it, {len(entries)} leaderboard rows, input PSNR {data['input']['psnr']:.2f} dB")
PY
  python -m pipeline.submission check submissions/hinet_ntire_submission.zip --frames data/prepared/index/test300.csv
  echo "$task: $((SECONDS - start)) s"
done

echo "== real layouts: GoPro, SIDD, Rain13K trees (tests/layout_trees.py at 96x128), each indexed, trained (tiny),"
echo "   evaluated, packaged in its results layout and ranked on its own leaderboard"
for source in gopro sidd rain13k; do
  git checkout -q params.yaml
  python .ci/layout_tree.py $source "$work/trees/$source"
  start=$SECONDS
  dvc exp run -S data.source=$source -S data.root="$work/trees/$source" -S data.sidd_block=32 "${cheap[@]}" \
    > "exp_$source.log" 2>&1 || { tail -50 "exp_$source.log"; exit 1; }
  grep -q "Running stage 'prepare'" "exp_$source.log" && grep -q "Running stage 'train@wd_s1'" "exp_$source.log"
  SOURCE=$source python - <<'PY'
import os, zipfile
import pandas as pd
from pipeline.config import load_params
from pipeline.tasks import get_task
source, params = os.environ["SOURCE"], load_params("params.yaml")
task = get_task(source)
board = pd.read_csv("submissions/leaderboard.csv")
assert set(board["task"]) == {source}, board["task"]
expected = {"input", "base/plain", "ensemble"} | {f"{m}/{t}" for m in params.models for t in params.tta.ladder}
assert set(board["entry"]) == expected, sorted(set(board["entry"]) ^ expected)
val300 = pd.read_csv("data/prepared/index/val300.csv")
assert set(val300["task"]) == {source} and set(val300["test_set"]) == set(task.test_set_names), val300["test_set"]
test300 = pd.read_csv("data/prepared/index/test300.csv")
members = zipfile.ZipFile("submissions/hinet_ntire_submission.zip").namelist()
assert len(members) == len(test300) > 0 and {m.split("/")[0] for m in members} == set(test300["test_set"]), members
print(f"{source}: {len(board)} leaderboard rows, {len(val300)} scored frames, results zip {members[:2]}...")
PY
  echo "$source: $((SECONDS - start)) s"
done

echo "e2e smoke: OK"
