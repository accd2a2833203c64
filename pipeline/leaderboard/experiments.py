"""Reading ``dvc exp show --json``: its records (baselines and their experiments) and flattened parameters, shared by
the cross-experiment table (:mod:`.merge`) and the TTA grid (:mod:`.grid`)."""

from __future__ import annotations

import json

from pipeline.leaderboard.table import LeaderboardError

__all__ = ["exp_params", "exp_records", "flatten"]


def flatten(obj, prefix: str = "") -> dict:
    """Flatten nested dicts to dotted keys; lists become JSON text so they compare and display as one value."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list):
        return {prefix[:-1]: json.dumps(obj)}
    return {prefix[:-1]: obj}


def exp_records(exp_show) -> list[dict]:
    """Flatten ``dvc exp show --json`` (DVC 3.x: a list of workspace/baseline records with nested experiments)."""
    if isinstance(exp_show, dict):
        exp_show = [exp_show]
    if not isinstance(exp_show, list):
        raise LeaderboardError("dvc exp show --json: expected a list of records")
    out = []
    for top in exp_show:
        if not isinstance(top, dict) or "rev" not in top:
            raise LeaderboardError(f"dvc exp show --json: unexpected record {str(top)[:80]!r}")
        baseline = top.get("name") or top["rev"][:7]
        kind = "workspace" if top["rev"] == "workspace" else "baseline"
        out.append({"record": top, "baseline": baseline, "kind": kind})
        for group in top.get("experiments") or []:
            for rec in group.get("revs") or []:
                out.append({"record": rec, "baseline": baseline, "kind": "experiment", "group": group.get("name")})
    return out


def exp_params(record: dict) -> dict:
    """An experiment record's parameters as dotted keys: ``params.yaml``'s bare (``tta.crops.n``), any other params
    file's prefixed with its name (``other.yaml:key``)."""
    params: dict = {}
    for file, payload in (((record.get("data") or {}).get("params")) or {}).items():
        flat = flatten((payload or {}).get("data") or {})
        params.update(flat if file == "params.yaml" else {f"{file}:{k}": v for k, v in flat.items()})
    return params
