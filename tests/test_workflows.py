"""The workflow layer and the house rules: the chosen eps, option validation, feature tables,
``gbdist.open_store``, and evaluate / learn / explain called as functions."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from typer.testing import CliRunner

import gbdist
from gbdist.cli import app
from gbdist.errors import GbdistError, StoreError
from gbdist.stages.client import ClusterConfig
from gbdist.store.schema import chosen_eps, lae_done
from gbdist.workflows.lae import LaeOptions, find_laes
from gbdist.workflows.learning import EvaluateOptions, ExplainOptions, LearnOptions, evaluate_store, explain_store, train_store

from conftest import ROOT

runner = CliRunner()


def test_a_further_lae_run_leaves_the_chosen_eps(store_copy, scheduler_address):
    store, labels = store_copy
    here = ClusterConfig(scheduler=scheduler_address)
    assert chosen_eps(zarr.open_group(store, mode="r")) == pytest.approx(0.032)
    report = find_laes(store, LaeOptions(eps=0.05), here)
    group = zarr.open_group(store, mode="r")
    assert lae_done(group, 0.05) and not report.chosen
    assert chosen_eps(group) == pytest.approx(0.032)
    result = evaluate_store(store, labels, Path(store).parent / "t1", EvaluateOptions(splits=2, properties=["energy"]),
                            here)
    assert result.info["ler_eps"] == pytest.approx(0.032)
    assert "eps 0.0320" in result.markdown
    assert json.loads((Path(store).parent / "t1" / "run.json").read_text())["ler_eps"] == pytest.approx(0.032)
    # --eps picks another finished run; --choose makes it the store's
    other = evaluate_store(store, labels, Path(store).parent / "t2",
                           EvaluateOptions(splits=2, properties=["energy"], eps=0.05), here)
    assert other.info["ler_eps"] == pytest.approx(0.05)
    result = runner.invoke(app, ["lae", "--store", store, "--eps", "0.05", "--choose", "--scheduler",
                                 scheduler_address, "--no-verbose"])
    assert result.exit_code == 0, result.output
    assert chosen_eps(zarr.open_group(store, mode="r")) == pytest.approx(0.05)


def test_the_job_file_eps_is_chosen_again(store_copy, scheduler_address, learning_store):
    from gbdist.workflows.job import JobConfig, run_job

    store, _ = store_copy
    here = ClusterConfig(scheduler=scheduler_address)
    find_laes(store, LaeOptions(eps=0.05, choose=True), here)
    inputs = json.loads(json.dumps(zarr.open_group(store, mode="r").attrs["inputs"]))
    run_job(JobConfig(store=store, inputs=[r["path"] for r in inputs], cluster=here))
    assert chosen_eps(zarr.open_group(store, mode="r")) == pytest.approx(0.032)


@pytest.mark.parametrize("eps", ["-1", "0", "2.5"])
def test_lae_refuses_an_unusable_eps_and_writes_nothing(store_copy, eps):
    store, _ = store_copy
    before = sorted(p.name for p in Path(store).iterdir())
    attrs = dict(zarr.open_group(store, mode="r").attrs)
    result = runner.invoke(app, ["lae", "--store", store, "--eps", eps, "--workers", "1", "--no-verbose"])
    assert result.exit_code == 2, result.output
    assert "--eps" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in Path(store).iterdir()) == before
    assert dict(zarr.open_group(store, mode="r").attrs) == attrs
    assert not Path(store + ".lock").exists()


@pytest.mark.parametrize("args, flag", [
    (["evaluate", "--splits", "1"], "--splits"),
    (["evaluate", "--class-weight", "heavy"], "--class-weight"),
    (["evaluate", "--eps", "3"], "--eps"),
    (["evaluate", "--workers", "0"], "--workers"),
    (["curve", "--fractions", "0.5,1.5"], "--fractions"),
    (["curve", "--fractions", "half"], "--fractions"),
    (["curve", "--fits", "0"], "--fits"),
    (["learn", "--eps", "0"], "--eps"),
    (["explain", "--property", "energy", "--top", "0"], "--top"),
])
def test_every_option_is_checked(learning_store, args, flag):
    store, labels = learning_store
    result = runner.invoke(app, [*args, "--store", str(store), "--labels", str(labels), "--no-verbose"])
    assert result.exit_code == 2, result.output
    assert flag in " ".join(result.output.split()) and "Traceback" not in result.output


def test_labels_folder_must_have_the_olmsted_layout(learning_store, tmp_path):
    store, _ = learning_store
    (tmp_path / "trends").mkdir()
    result = runner.invoke(app, ["evaluate", "--store", str(store), "--labels", str(tmp_path), "--no-verbose"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert str(tmp_path) in text and "supplement/fcc1-1.txt" in text and "trends/mobility_trend.csv" in text


def test_a_feature_table_scores_like_the_builtin_asr(learning_store, tmp_path, scheduler_address):
    store, labels = learning_store
    ds = gbdist.open_store(str(store))
    table = pd.DataFrame(ds["asr"].values, columns=[f"f{k}" for k in range(ds.sizes["feature"])])
    table.insert(0, "id", ds["gb"].values)
    csv = tmp_path / "asr_table.csv"
    table.to_csv(csv, index=False)
    result = evaluate_store(str(store), labels, tmp_path / "t1",
                            EvaluateOptions(splits=3, representations=["ASR"], features=[str(csv)]),
                            ClusterConfig(scheduler=scheduler_address))
    for prop, cells in result.table.items():
        assert cells["asr_table"]["scores"] == cells["ASR"]["scores"], prop
    zarr_table = evaluate_store(str(store), labels, tmp_path / "t2",
                                EvaluateOptions(splits=3, representations=[], features=[str(Path(store) / "asr")]),
                                ClusterConfig(scheduler=scheduler_address))
    for prop, cells in zarr_table.table.items():
        assert cells["asr"]["scores"] == result.table[prop]["ASR"]["scores"], prop


def test_feature_table_errors_name_the_file(learning_store, tmp_path):
    store, labels = learning_store
    bad = tmp_path / "bad.csv"
    bad.write_text("id,f0\nnot-a-gb,1.0\n")
    with pytest.raises(GbdistError, match="bad.csv: 1 id"):
        evaluate_store(str(store), labels, tmp_path / "t", EvaluateOptions(features=[str(bad)]))
    few = tmp_path / "few.csv"
    few.write_text("id,f0\ngb00,1.0\n")
    with pytest.raises(GbdistError, match="few.csv: no row for"):
        evaluate_store(str(store), labels, tmp_path / "t", EvaluateOptions(features=[str(few)]))


def test_learn_and_explain_as_functions_say_their_eps(learning_store, tmp_path, scheduler_address):
    store, labels = learning_store
    records = train_store(str(store), labels, tmp_path / "models", LearnOptions(properties=["energy"]),
                          ClusterConfig(scheduler=scheduler_address))
    assert {r["representation"] for r in records} == {"ASR", "ASR_area", "LER"}
    saved = json.loads((tmp_path / "models" / "models.json").read_text())
    assert saved["ler_eps"] == pytest.approx(0.032)
    result = explain_store(str(store), labels, tmp_path / "explain", ExplainOptions(property="energy", top=2))
    assert result.eps == pytest.approx(0.032) and len(result.entries) == 2
    assert "eps 0.032" in result.report.read_text()
    with pytest.raises(StoreError, match="no finished LAE run at eps 0.0700"):
        explain_store(str(store), labels, tmp_path / "e2", ExplainOptions(property="energy", eps=0.07))


def test_open_store_is_lazy_and_labelled(learning_store):
    store, _ = learning_store
    ds = gbdist.open_store(str(store))
    assert {"gb", "lae", "feature", "unique"} <= set(ds.sizes)
    assert ds["soap"].dims == ("lae", "feature") and ds["ler"].dims == ("gb", "unique")
    assert ds.attrs["eps"] == pytest.approx(0.032)
    assert hasattr(ds["soap"].data, "dask")
    group = zarr.open_group(str(store), mode="r")
    offset = group["gb/offset"][:]
    rows = ds["soap"].sel(lae_gb="gb03").values
    np.testing.assert_array_equal(rows, group["soap"][offset[3]:offset[4]])
    np.testing.assert_array_equal(ds["asr"].sel(gb="gb03").values, group["asr"][3])
    with pytest.raises(StoreError):
        gbdist.open_store(str(store), eps=0.2)


def test_public_api_names_resolve():
    for name in gbdist.__all__:
        assert getattr(gbdist, name) is not None


# ---------------------------------------------------------------- house rules
LAYERS = {"errors": 0, "structure": 0, "rss": 0, "io": 1, "compute": 1, "store": 2, "stages": 3, "learning": 3,
          "explain": 3, "datasets": 3, "workflows": 4, "tools": 5, "cli": 5}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gbdist."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("gbdist.")}
    return names


def test_imports_run_one_way():
    """kernels → store → stages / learning / explain / datasets → workflows → cli, never back."""
    package = ROOT / "gbdist"
    wrong = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts == ("__init__",):
            continue
        layer = LAYERS[parts[0]]
        wrong += [f"{path.relative_to(ROOT)} imports gbdist.{name}" for name in _imports(path)
                  if LAYERS.get(name, 0) > layer]
    assert not wrong, wrong


def test_only_the_schema_module_names_lae_groups():
    hits = [p for p in (ROOT / "gbdist").rglob("*.py") if "lae_eps_" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in hits] == ["gbdist/store/schema.py"]


def test_a_class_learning_curve_has_balanced_accuracy(learning_store, tmp_path, scheduler_address):
    from gbdist.workflows.learning import CurveOptions, curve_store

    store, labels = learning_store
    rows, eps = curve_store(str(store), labels, tmp_path, CurveOptions(property="disordered", fractions=[0.5], fits=2),
                            ClusterConfig(scheduler=scheduler_address))
    assert {r["representation"] for r in rows} == {"ASR", "ASR_area", "LER"} and eps == pytest.approx(0.032)
    assert all(0 <= r["balanced_mean"] <= 100 for r in rows)
    assert "balanced_mean" in (tmp_path / "curve_disordered.csv").read_text()
    assert "curve_disordered.png" in (tmp_path / "curve_disordered.md").read_text()
