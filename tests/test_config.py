"""params.yaml schema, presets, and dvc.yaml's dependency hygiene (every stage lists the library code it imports)."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, CropsConfig, ModelTrainConfig, Params, TTAConfig, load_params, parse

REPO = Path(__file__).resolve().parents[1]


def test_params_yaml_and_presets_load():
    params = load_params(REPO / "params.yaml")
    assert set(params.ensemble.members) <= set(params.models)
    for preset in sorted((REPO / "presets").glob("*.yaml")):
        p = load_params(preset)
        assert set(p.ensemble.members) <= set(p.models), preset


def test_every_preset_names_every_path_dvc_yaml_templates():
    """``cp presets/X.yaml params.yaml && dvc repro`` templates dvc.yaml from the raw file: a missing key is a DVC
    parse error, not a default."""
    import re

    used = set(re.findall(r"\$\{paths\.(\w+)\}", (REPO / "dvc.yaml").read_text()))
    assert {"data", "models", "pretrained", "live"} <= used
    for path in [REPO / "params.yaml", *sorted((REPO / "presets").glob("*.yaml"))]:
        raw = yaml.safe_load(path.read_text())
        assert not used - set(raw["paths"]), f"{path.name} lacks paths {sorted(used - set(raw['paths']))}"


def test_public_reds_recipe_is_expressed_exactly():
    cfg = load_params(REPO / "presets" / "reds-public.yaml").models["hinet"]
    assert (cfg.variant, cfg.steps, cfg.global_batch, cfg.patch_size) == ("hinet-1x", 400_000, 64, 256)
    from pipeline.train import plan_batch

    launch = load_params(REPO / "presets" / "reds-public.yaml").launch
    assert launch.processes == 8 and plan_batch(cfg.global_batch, launch.processes).per_process == 8  # 8 per GPU
    assert (cfg.optimizer, cfg.lr, cfg.betas, cfg.weight_decay) == ("adam", 2e-4, (0.9, 0.99), 0.0)
    assert (cfg.warmup_steps, cfg.min_lr, cfg.grad_clip, cfg.seed) == (0, 1e-7, 0.01, 100)
    assert (cfg.loss, cfg.stage_weights, cfg.identity_init) == ("psnr", (0.5, 0.5), False)


def test_unknown_and_mistyped_keys_are_named():
    with pytest.raises(ConfigError, match=r"models\.a: unknown key\(s\) \['stpes'\]"):
        parse(Params, {"models": {"a": {"stpes": 3}}})
    with pytest.raises(ConfigError, match=r"models\.a\.steps: expected an integer"):
        parse(Params, {"models": {"a": {"steps": "many"}}})
    with pytest.raises(ConfigError, match=r"betas: expected 2 items"):
        parse(ModelTrainConfig, {"betas": [0.9]})
    with pytest.raises(ConfigError, match=r"ladder\[1\]: got 'x9', must be one of"):
        parse(TTAConfig, {"ladder": ["plain", "x9"]})
    with pytest.raises(ConfigError, match=r"data\.root: got '', must be the folder of a REDS download"):
        parse(Params, {"data": {"source": "reds"}})
    assert parse(ModelTrainConfig, {"width": None}).width is None


def _params_with(tmp_path: Path, **changes) -> Path:
    """A copy of params.yaml with ``changes`` applied (dotted keys; None deletes, a new key is added)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = raw
        for key in parents:
            node = node[key]
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"foo": 1},
            "unknown key(s) ['foo']; known: ['data', 'ensemble', 'launch', 'models', 'package', 'paths', "
            "'pretrain', 'tta']",
        ),
        ({"tta__tile": 0}, "tta.tile: got 0, must be >= 1"),
        ({"tta__tile": 256, "tta__overlap": 256}, "tta.overlap: got 256, must be in [0, tta.tile=256)"),
        (
            {"tta__crops__n": 0},
            "tta.crops.n: got 0, must be >= 1 when a crop mode is used (tta.ladder ['plain', 'x8', 'x8+crops'])",
        ),
        (
            {"tta__crops__n": 0, "tta__ladder": ["plain", "crops"], "tta__submit": "crops"},
            "tta.crops.n: got 0, must be >= 1 when a crop mode is used (tta.ladder ['plain', 'crops'])",
        ),
        ({"tta__crops__side": 0}, "tta.crops.side: got 0, must be >= 1"),
        ({"models__wd_s2__steps": 0}, "models.wd_s2.steps: got 0, must be >= 1"),
        ({"models__wd_s1__global_batch": -2}, "models.wd_s1.global_batch: got -2, must be >= 1"),
        (
            {"models__wd_s1__export": "average:2"},
            "models.wd_s1.snapshot_every: got 0, must be > 0 when export is 'average:2' (it averages snapshots)",
        ),
        ({"launch__processes": 0}, "launch.processes: got 0, must be >= 1"),
        ({"pretrain__patch_size": 0}, "pretrain.patch_size: got 0, must be >= 1"),
        (
            {"data__patch_size": 256},
            "data.patch_size: got 256, must be > 0 exactly when data.store is 'patches' (it is only read then)",
        ),
        ({"data__store": "lmdb"}, "data.store: got 'lmdb', must be one of ['shards', 'frames', 'patches']"),
        ({"models__wd_s3__lr": 0.0}, "models.wd_s3.lr: got 0.0, must be a finite number > 0"),
        (
            {"ensemble__members": ["wd_s1", "wd_s9"]},
            "ensemble.members: got ['wd_s1', 'wd_s9'], must be names of models (['wd_s9'] are not; models: "
            "['wd_s1', 'wd_s2', 'wd_s3'])",
        ),
        (
            {"ensemble__weights": [1.0, 2.0]},
            "ensemble.weights: got [1.0, 2.0], must be one weight per member (3: ['wd_s1', 'wd_s2', 'wd_s3']) or empty "
            "for equal weights",
        ),
        ({"data__workers": 0}, "data.workers: got 0, must be >= 1"),
        (
            {"models__base": {"variant": "hinet-tiny"}},
            "models: got ['base', 'wd_s1', 'wd_s2', 'wd_s3'], must be named anything but 'ensemble' or 'base' "
            "(reserved: the ensemble's and the pretrained base's predictions and scores)",
        ),
        ({"data__synth__width": 100}, "data.synth.width: got 100, must be a positive multiple of 16 (HINet input)"),
    ],
)
def test_values_out_of_range_fail_at_load_with_one_message(tmp_path, changes, message):
    """Every section checks its values once, when params load: one line naming the file, key, value and range."""
    path = _params_with(tmp_path, **changes)
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert str(info.value) == f"{path}: {message}"


def test_crop_count_zero_is_fine_without_a_crop_mode():
    tta = TTAConfig(ladder=("plain", "x8"), submit="x8", crops=CropsConfig(n=0))
    assert tta.crops.n == 0
    with pytest.raises(ConfigError) as info:
        TTAConfig(ladder=("plain", "x8+crops"), submit="plain", crops=CropsConfig(n=0))
    assert str(info.value) == (
        "tta.crops.n: got 0, must be >= 1 when a crop mode is used (tta.ladder ['plain', 'x8+crops'])"
    )


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def _pipeline_imports(path: Path, seen: set[Path]) -> set[Path]:
    """Files of the ``pipeline`` package that ``path`` imports, transitively."""
    tree = ast.parse(path.read_text())
    found: set[Path] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level > 0:  # relative: resolve against this file's package
            package = path.relative_to(REPO).parent.parts[: len(path.relative_to(REPO).parent.parts) - node.level + 1]
            module = ".".join([*package, *([node.module] if node.module else [])])
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if not name.startswith("pipeline"):
                continue
            parts = name.split(".")
            parents = [REPO / Path(*parts[:i]) / "__init__.py" for i in range(1, len(parts))]  # executed on import
            base = REPO / Path(*parts)
            for cand in (*parents, base.with_suffix(".py"), base / "__init__.py"):
                if cand.is_file() and cand not in seen:
                    seen.add(cand)
                    found.add(cand)
                    found |= _pipeline_imports(cand, seen)
    return found


def _covered(file: Path, deps: list[str]) -> bool:
    rel = file.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_stage_depends_on_its_script_and_the_library_code_it_imports():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        stage = stage.get("do", stage)
        module = next(t for t in stage["cmd"].split() if t.startswith("stages."))
        script = module.replace(".", "/") + ".py"
        deps = [d for d in stage["deps"] if "${" not in d]
        assert script in deps, f"{name}: its script {script} is not a dep"
        missing = [
            f.relative_to(REPO).as_posix()
            for f in _pipeline_imports(REPO / script, set())
            if f.name != "__init__.py" and not _covered(f, deps)
        ]
        assert not missing, f"stage {name} imports {missing} but does not list them in deps"


def test_every_stage_runs_as_a_module_of_the_folder_it_runs_in(tmp_path):
    """Stage commands are ``python -m stages.<x>`` (or the launcher with a module), and ``python -m`` imports the
    ``pipeline`` next to ``stages/`` before the editable install's: a queued experiment runs its own copy."""
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith(("python -m stages.", "python -m pipeline.launch stages.")), (name, cmd)
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("COPY = True\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "probe.py").write_text("import pipeline\nprint(getattr(pipeline, 'COPY', False))\n")
    out = subprocess.run([sys.executable, "-m", "stages.probe"], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    script = subprocess.run([sys.executable, "stages/probe.py"], cwd=tmp_path, capture_output=True, text=True)
    assert script.stdout.strip() != "True"  # the old form: the installed library (or none), never the copy


def test_training_depends_on_training_code_and_data_only():
    """Narrow deps: train@ and pretrain never depend on TTA/inference code, the test split or the whole data folder."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for stage in (dvc["stages"]["train"]["do"], dvc["stages"]["pretrain"]):
        deps = stage["deps"]
        for banned in (
            "pipeline/inference.py",
            "pipeline/predict.py",
            "pipeline/ensemble.py",
            "${paths.data}",
            "data/prepared",
            "${paths.data}/index/test300.csv",
        ):
            assert banned not in deps, banned
        data = [d.split("/")[-1] for d in deps if "index/" in d or d.endswith(("patches", "shards"))]
        assert data == ["train.csv", "val300.csv", "val300.json", "patches", "shards"]


def test_training_params_never_include_tta_or_ensemble():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    train = dvc["stages"]["train"]["do"]
    assert train["params"] == ["models.${key}", "launch"]  # the recipe, and where it runs (processes split the batch)
    for later in ("infer", "evaluate"):
        assert not any(str(p).startswith("models") for p in dvc["stages"][later]["do"]["params"])


def test_pretrain_stage_paths_match_params_and_it_is_frozen():
    """The pretrain stage spells its paths out (DVC cannot unfreeze a templated stage): they must equal params'."""
    from pipeline.config import load_params

    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = dvc["stages"]["pretrain"]
    paths = load_params(REPO / "params.yaml").paths
    assert stage["frozen"] is True and stage["params"] == ["pretrain"]
    assert [d for d in stage["deps"] if d.startswith(paths.data)] == [
        f"{paths.data}/index/train.csv", f"{paths.data}/index/val300.csv", f"{paths.data}/index/val300.json",
        f"{paths.data}/patches", f"{paths.data}/shards",
    ]  # fmt: skip
    outs = [next(iter(o)) for o in stage["outs"] + stage["metrics"] + stage["plots"]]
    assert outs == [
        f"{paths.pretrained}/base.safetensors",
        f"{paths.pretrained}/base.json",
        f"{paths.pretrained}/base_curve.png",
    ]
    # Every member fine-tuned from the base depends on its weights.
    assert "${paths.pretrained}/base.safetensors" in dvc["stages"]["train"]["do"]["deps"]


def test_paths_defaults_equal_params_yaml_and_dvc_yaml_names_the_layouts_files():
    """One set of paths: PathsConfig's defaults are params.yaml's, and the files dvc.yaml templates from ``paths`` are
    the ones pipeline.layout.Layout names for the code."""
    from pipeline.config import PathsConfig
    from pipeline.layout import Layout

    paths = load_params(REPO / "params.yaml").paths
    assert PathsConfig() == paths
    layout = Layout(paths)
    text = (REPO / "dvc.yaml").read_text()
    for key, value in vars(paths).items():
        text = text.replace(f"${{paths.{key}}}", value)
    dvc = yaml.safe_load(text)["stages"]

    def files(stage: dict, kind: str) -> set[str]:
        return {next(iter(o)) if isinstance(o, dict) else o for o in stage.get(kind, [])}

    evaluate, ensemble = dvc["evaluate"]["do"], dvc["ensemble"]
    m = "${key}"
    assert {str(layout.index("val300")), str(layout.input_scores)} <= files(evaluate, "deps")
    assert str(layout.eval_dir(m)) in files(evaluate, "outs")
    assert str(layout.eval_metrics(m)) in files(evaluate, "metrics")
    assert {str(layout.ensemble()), str(layout.ensemble_eval_csv.parent)} == files(ensemble, "outs")
    assert str(layout.ensemble_metrics) in files(ensemble, "metrics")
    assert str(layout.predictions(m)) in files(dvc["infer"]["do"], "outs")
    assert str(layout.weights(m)) in files(dvc["train"]["do"], "outs")
    assert str(layout.train_metrics(m)) in files(dvc["train"]["do"], "metrics")
    assert str(layout.data_metrics) in files(dvc["prepare"], "metrics")
    assert str(layout.data_contact_sheet) in files(dvc["prepare"], "plots")
    assert str(layout.params_check) in files(dvc["check_params"], "outs")
    assert str(layout.submission_zip("${package.name}")) in files(dvc["package"], "outs")
    assert {str(layout.submissions / n) for n in ("leaderboard.csv", "leaderboard.md")} <= files(
        dvc["leaderboard"], "outs"
    )
    # The pretrained base as a ladder step: infer_base and evaluate_base write the base's files under the name
    # Layout gives it, and the leaderboard depends on them (through its folders) and on the base's provenance.
    from pipeline.layout import BASE, BASE_MODE

    infer_base, evaluate_base, leaderboard = dvc["infer_base"], dvc["evaluate_base"], dvc["leaderboard"]
    assert {str(layout.base_weights), str(layout.index("val300"))} <= files(infer_base, "deps")
    assert str(layout.index("test300")) not in files(infer_base, "deps")  # val-300 only
    assert files(infer_base, "outs") == {str(layout.predictions(BASE))}
    assert {str(layout.predictions(BASE)), str(layout.index("val300")), str(layout.input_scores)} <= files(
        evaluate_base, "deps"
    )
    assert files(evaluate_base, "outs") == {str(layout.eval_dir(BASE))}
    assert files(evaluate_base, "metrics") == {str(layout.eval_metrics(BASE))}
    deps = sorted(files(leaderboard, "deps"))
    for needed in (layout.eval_csv(BASE, BASE_MODE), layout.eval_metrics(BASE), layout.base_provenance):
        assert any(str(needed) == d or str(needed).startswith(d + "/") for d in deps), needed


def test_the_base_is_scored_in_the_plain_mode_with_only_the_tta_keys_that_mode_reads():
    from pipeline.layout import BASE, BASE_MODE, Layout
    from pipeline.train import TrainOutputs

    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert dvc["infer_base"]["cmd"] == "python -m pipeline.launch stages.infer --base"
    assert dvc["evaluate_base"]["cmd"] == "python -m stages.evaluate --base"
    assert BASE_MODE == "plain" and BASE == "base"
    # Crops, the ladder and the submit mode do not change a plain prediction: editing them never reruns the base.
    tta_keys = [
        "tta.tile",
        "tta.overlap",
        "tta.tiling",
        "tta.batch",
        "tta.precision",
        "tta.cast_weights",
        "tta.compile",
    ]
    assert dvc["infer_base"]["params"] == [*tta_keys, "launch"]
    assert "params" not in dvc["evaluate_base"]
    # Layout names the files the frozen pretrain stage writes.
    paths = load_params(REPO / "params.yaml").paths
    pretrain = TrainOutputs.for_pretrain(paths)
    assert (Layout(paths).base_weights, Layout(paths).base_provenance) == (pretrain.weights, pretrain.metrics)


@pytest.mark.parametrize(
    ("preset", "source", "variant", "seed", "betas", "min_lr", "warmup", "loss", "weights"),
    [
        ("gopro-public", "gopro", "hinet-1x", 10, (0.9, 0.99), 1e-7, 0, "psnr", (0.5, 0.5)),
        ("sidd-public", "sidd", "hinet-1x-sidd", 100, (0.9, 0.999), 1e-6, 0, "l1", (1.0, 1.0)),
        ("rain13k-public", "rain13k", "hinet-1x-rain13k", 10, (0.9, 0.99), 1e-7, 10_000, "psnr", (0.5, 0.5)),
    ],
)
def test_public_task_recipes_are_expressed_exactly(preset, source, variant, seed, betas, min_lr, warmup, loss, weights):
    # megvii-model/HINet options/train/{GoPro,SIDD,Rain13k}/HINet.yml: 400k iterations, 8 per GPU on 8 GPUs, 256 px,
    # Adam 2e-4, no weight decay, grad-norm clip 0.01 (image_restoration_model.py's default).
    params = load_params(REPO / "presets" / f"{preset}.yaml")
    cfg = params.models["hinet"]
    assert params.data.source == source and params.launch.processes == 8
    assert (cfg.variant, cfg.steps, cfg.global_batch, cfg.patch_size, cfg.seed) == (variant, 400_000, 64, 256, seed)
    assert (cfg.optimizer, cfg.lr, cfg.betas, cfg.weight_decay, cfg.grad_clip) == ("adam", 2e-4, betas, 0.0, 0.01)
    assert (cfg.min_lr, cfg.warmup_steps, cfg.loss, cfg.stage_weights) == (min_lr, warmup, loss, weights)


def test_precision_has_one_vocabulary_in_every_section():
    """models.<m>.mixed_precision and tta.precision take the same four words; accelerate's 'no' gets a hint."""
    from pipeline.config import PRECISIONS

    assert PRECISIONS == ("auto", "bf16", "fp16", "fp32")
    for value in PRECISIONS:
        assert parse(ModelTrainConfig, {"mixed_precision": value}).mixed_precision == value
        assert parse(TTAConfig, {"precision": value}).precision == value
    with pytest.raises(ConfigError, match=r"mixed_precision: got 'no', .*'no' is accelerate's word for fp32"):
        parse(ModelTrainConfig, {"mixed_precision": "no"})
    with pytest.raises(ConfigError, match=r"precision: got 'fp64', must be one of \['auto', 'bf16', 'fp16', 'fp32'\]$"):
        parse(TTAConfig, {"precision": "fp64"})


def _keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(map(str, obj)) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_no_params_key_is_hidden_from_dvcs_run_cache():
    """DVC's run cache keys a stage by its deps and params with every key named ``size`` or ``nfiles`` dropped
    (``dict_sha256(..., exclude=[size, nfiles])``), so a param of that name never invalidates it: ``dvc exp run -S
    tta.crops.size=96`` restored the predictions of size 128. No params key may use those names, and a changed crop
    side must change the key DVC computes."""
    from dvc.utils import dict_sha256
    from dvc_data.hashfile.meta import Meta

    root = Path(__file__).parents[1]
    for path in [root / "params.yaml", *sorted((root / "presets").glob("*.yaml"))]:
        clash = _keys(yaml.safe_load(path.read_text())) & {Meta.PARAM_SIZE, Meta.PARAM_NFILES}
        assert not clash, f"{path.name}: params key(s) {clash} are invisible to DVC's run cache"

    def run_cache_key(side: int) -> str:
        tta = dataclasses.asdict(TTAConfig(crops=CropsConfig(side=side)))
        return dict_sha256({"params": {"params.yaml": {"tta": tta}}}, exclude=[Meta.PARAM_SIZE, Meta.PARAM_NFILES])

    assert run_cache_key(96) != run_cache_key(128)


def test_the_renamed_crop_key_is_named_in_the_error():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['size'\] \(size is now side\)"):
        parse(CropsConfig, {"n": 8, "size": 96}, "tta.crops")
