"""Shrink params.yaml in place for the CI smoke run: tiny frames, tiny models, few steps, few crops."""

import sys

import yaml

path = sys.argv[1]
params = yaml.safe_load(open(path))
params["data"]["synth"].update(
    height=96, width=128, train_sequences=3, val_sequences=2, test_sequences=2, frames_per_sequence=10, subframes=7
)
for cfg in [params["pretrain"], *params["models"].values()]:
    cfg.update(
        variant="hinet-tiny",
        width=None,
        extra_blocks=None,
        steps=20,
        global_batch=2,
        patch_size=64,
        val_every=10,
        save_every=10,
        warmup_steps=2,
    )
params["pretrain"]["init_from"] = ""  # the tiny base starts from scratch (the committed base v1 is another size)
params["tta"].update(tile=64, overlap=16)
params["tta"]["crops"].update(n=8, side=48)
yaml.safe_dump(params, open(path, "w"), sort_keys=False)
