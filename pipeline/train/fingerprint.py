"""What a checkpoint must share with a run to be resumed: the recipe, the training data, the training code and the
process count, each hashed here.

The training code is derived, not listed: every ``.py`` file of this package plus the ``pipeline`` modules those files
import, transitively (read from their ``import`` statements), except the few that cannot change what is trained.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from pathlib import Path

from pipeline.config import ModelTrainConfig

__all__ = ["config_fingerprint", "data_fingerprint", "run_fingerprint", "training_code"]

# Fields that do not change the trajectory already trained: a run may be continued (more ``steps``) or re-exported
# under new values. (Raising ``steps`` does stretch the cosine schedule from the resume point on.)
_CONTINUABLE = (
    "steps",
    "val_every",
    "save_every",
    "keep_checkpoints",
    "snapshot_every",
    "export",
    "log_every",
    "num_workers",
)

PACKAGE = Path(__file__).resolve().parent  # pipeline/train: hashed whole (tests point it at a copy)
_ROOT = PACKAGE.parents[1]  # the folder holding the ``pipeline`` package: imports resolve against it
# Imported by training, yet unable to change the weights it trains: the recipe is hashed by value (not config.py's
# text), layout and figures name files and draw the curve, and scoring only scores the val-300 inputs when prepare's
# stored scores are missing. Editing them resumes a checkpoint (a DVC rerun re-exports) instead of retraining.
_OUTSIDE_TRAINING = frozenset(
    {"pipeline/config.py", "pipeline/layout.py", "pipeline/figures.py", "pipeline/scoring.py"}
)


def config_fingerprint(cfg: ModelTrainConfig) -> str:
    """Hash of the training recipe; a checkpoint is only resumed by a run with the same recipe (``_CONTINUABLE``
    fields aside, so a finished run can be continued for more steps)."""
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _CONTINUABLE}
    blob = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_fingerprint(data_dir: str | Path) -> str:
    """Hash of what training reads: the train index (relative paths, sizes) and the embedded set's manifest if any."""
    h = hashlib.sha256()
    for rel in ("index/train.csv", "reds/manifest.json"):
        path = Path(data_dir) / rel
        if path.is_file():
            h.update(rel.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_fingerprint(cfg: ModelTrainConfig, data_dir: str | Path, processes: int) -> str:
    """What a checkpoint must share to be resumed: the recipe (:func:`config_fingerprint`), the training data, the
    training code (:func:`training_code`) and the process count. A crash resumes; raising ``steps`` continues;
    anything else starts afresh (so a DVC rerun after a code edit retrains instead of re-exporting the old state)."""
    h = hashlib.sha256()
    h.update(config_fingerprint(cfg).encode())
    h.update(data_fingerprint(data_dir).encode())
    h.update(str(processes).encode())
    for name, path in training_code().items():
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def training_code() -> dict[str, Path]:
    """The code a training run executes, by name (``pipeline/...``, sorted): every ``.py`` file of :data:`PACKAGE` and
    the ``pipeline`` modules they import, transitively, with the ``__init__.py`` files imported on the way."""
    found = {(Path("pipeline/train") / p.relative_to(PACKAGE)).as_posix(): p for p in PACKAGE.rglob("*.py")}
    todo = list(found)
    while todo:
        name = todo.pop()
        package = Path(name).parent.as_posix().replace("/", ".")  # what a relative import in it is relative to
        for module in _imported_modules(found[name], package):
            if module == "pipeline.train" or module.startswith("pipeline.train."):
                continue  # the package is hashed whole, from PACKAGE
            for dep in _module_files(module):
                if dep not in found and dep not in _OUTSIDE_TRAINING:
                    found[dep] = _ROOT / dep
                    todo.append(dep)
    return dict(sorted(found.items()))


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every dotted name a file's imports may refer to (``from a import b`` gives ``a`` and ``a.b``), relative imports
    resolved against ``package``; only names under ``pipeline``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in names if n == "pipeline" or n.startswith("pipeline.")}


def _module_files(module: str) -> list[str]:
    """The files importing ``module`` executes: each parent package's ``__init__.py``, then the module's own file."""
    parts = module.split(".")
    candidates = [Path(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    candidates += [Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")]
    return [c.as_posix() for c in candidates if (_ROOT / c).is_file()]
