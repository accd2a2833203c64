"""A run's folders: ``checkpoints/step_<n>`` (accelerate state, rotated, each labelled with the fingerprint that may
resume it) and ``snapshots/`` (EMA weight snapshots, ``best.safetensors``), and the export of the member from them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator

from pipeline.config import ConfigError
from pipeline.models import load_model, read_metadata, save_weights
from pipeline.models.weights import load_state_dict

__all__ = ["LABEL", "checkpoints", "export_weights", "find_checkpoint", "save_checkpoint", "save_snapshot"]

_CKPT = re.compile(r"^step_(\d{8})$")
# Beside accelerate's files in each checkpoint: the fingerprint that may resume it, the recipe and a readable copy of
# the loop state, so a checkpoint is found (and looked at) without loading it.
LABEL = "trainer_state.json"


def checkpoints(root: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints under ``root`` (``step_<8 digits>``), oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CKPT.match(p.name)) and p.is_dir()]
    return sorted(found)


def save_checkpoint(accelerator: Accelerator, root: Path, step: int, label: dict, keep: int) -> None:
    """``save_state`` into a temporary folder, label it, then rename it into place, so a kill never leaves a half
    checkpoint; keep the newest ``keep``."""
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / LABEL).write_text(json.dumps(label))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for _, old in checkpoints(root)[: -max(keep, 1)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def find_checkpoint(root: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint labelled with ``fingerprint`` (see :func:`~pipeline.train.run_fingerprint`)."""
    for _, path in reversed(checkpoints(root)):
        label = path / LABEL
        if label.is_file() and json.loads(label.read_text()).get("fingerprint") == fingerprint:
            return path
    return None


def save_snapshot(net: torch.nn.Module, snapshots: Path, name: str, *, variant: str, metadata: dict) -> None:
    """Save ``net``'s weights as ``snapshots/<name>.safetensors`` (``step_<8 digits>`` or ``best``)."""
    save_weights(net.float(), snapshots / f"{name}.safetensors", variant=variant, metadata=metadata)


def export_weights(snapshots: str | Path, export: str, final: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The member's weights by ``export``: ``final``, ``best`` (snapshot of the best val-300 step) or ``average:K``
    (uniform average of the last K snapshots) from the run's ``snapshots`` folder. Returns the model and a
    description; a missing choice is an error."""
    snaps = Path(snapshots)
    if export == "final":
        return final, "final"
    if export == "best":
        path = snaps / "best.safetensors"
        if not path.is_file():
            raise ConfigError(f"{path}: export 'best' asked for, but no best snapshot exists (was val_every > 0?)")
        return load_model(path), f"best (step {read_metadata(path)['metadata'].get('step', '?')})"
    k = int(export.split(":", 1)[1])
    found = sorted(snaps.glob("step_*.safetensors"))
    if len(found) < k:
        raise ConfigError(
            f"{snaps}: export {export!r} needs {k} snapshots, found {len(found)} "
            "(lower K or snapshot more often with snapshot_every)"
        )
    chosen = found[-k:]
    avg = load_model(chosen[0])
    sd = {key: v.double() for key, v in avg.state_dict().items()}
    for path in chosen[1:]:
        for key, v in load_state_dict(path).items():
            sd[key] += v.double()
    avg.load_state_dict({key: (v / k).to(avg.state_dict()[key].dtype) for key, v in sd.items()})
    return avg, f"average of {k} snapshots ({chosen[0].stem} .. {chosen[-1].stem})"


def weights_hash(model: torch.nn.Module) -> str:
    """A short hash of a model's weights: every process records its own, so a run shows they agree."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
