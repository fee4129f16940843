"""``gbdist predict``: the model bundle, consistency with the training store, novel environments,
bad input, and the Olmsted hold-out on a few boundaries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
import zarr
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.errors import GbdistError, StoreError
from gbdist.io.lammps import write_lammps_dump
from gbdist.learning.bundle import load_bundle
from gbdist.stages.client import ClusterConfig
from gbdist.store.schema import lae_path
from gbdist.workflows.learning import LearnOptions, train_store
from gbdist.workflows.predict import PredictOptions, predict_structures

from conftest import OLMSTED, OLMSTED_READ, OLMSTED_SELECT, olmsted_dump, toy_boundary

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(learning_store, tmp_path_factory, scheduler_address):
    """A bundle learnt from a private copy of the learning store, which is then deleted."""
    store, labels = learning_store
    root = tmp_path_factory.mktemp("bundle")
    copy = root / "train.zarr"
    shutil.copytree(store, copy)
    train_store(str(copy), labels, root / "written", LearnOptions(), ClusterConfig(scheduler=scheduler_address))
    shutil.rmtree(copy)
    moved = root / "moved"
    shutil.move(root / "written", moved)  # movable: another folder, no training store
    return moved


def _sources(store) -> list[str]:
    return [str(s) for s in zarr.open_group(str(store), mode="r")["gb/source"][:]]


def test_bundle_round_trip(bundle, learning_store):
    store, _ = learning_store
    b = load_bundle(bundle)
    group = zarr.open_group(str(store), mode="r")
    np.testing.assert_array_equal(b.unique_soap, group[lae_path(0.032, "unique/soap")][:])
    np.testing.assert_array_equal(b.unique_count, group[lae_path(0.032, "unique/count")][:])
    assert b.params == dict(group.attrs["params"]) and b.species == ["Ni"] and b.eps == pytest.approx(0.032)
    assert b.meta["training"]["soap_backend"] == group.attrs["soap_backend"] and b.params["soap"]["backend"] == "dscribe"
    assert {(r["property"], r["representation"]) for r in b.meta["models"]} == {
        (p, r) for p in ("energy", "disordered") for r in ("ASR", "ASR_area", "LER")}
    assert 0 <= b.in_domain_threshold <= 1
    assert not list(bundle.glob("*.pkl"))


def test_predicting_training_gbs_reproduces_their_asr_and_ler(bundle, learning_store, tmp_path, scheduler_address):
    store, labels = learning_store
    here = ClusterConfig(scheduler=scheduler_address)
    result = predict_structures(bundle, _sources(store), tmp_path / "p", PredictOptions(labels=str(labels)), here)
    trained = zarr.open_group(str(store), mode="r")
    predicted = zarr.open_group(result.store, mode="r")
    np.testing.assert_allclose(predicted["asr"][:], trained["asr"][:], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(predicted["assigned/label"][:], trained[lae_path(0.032, "label")][:])
    assert (result.predictions["novel_fraction"] == 0).all() and result.predictions["in_domain"].all()
    assert len(result.candidates) == 0
    columns = set(result.predictions.columns)
    assert {"id", "energy_ASR_area", "disordered_LER", "disordered_LER_p0", "disordered_LER_p1",
            "novel_fraction", "n_lae", "in_domain"} <= columns
    assert set(result.scores) == {"energy", "disordered"}
    assert (tmp_path / "p" / "parity_energy.png").exists() and (tmp_path / "p" / "confusion_disordered.png").exists()
    # the same predictions from the computed store, and again from the files (restart: nothing recomputed)
    again = predict_structures(bundle, None, tmp_path / "q", None, here, store=result.store)
    pd.testing.assert_frame_equal(again.predictions, result.predictions)


def _compressed(path: Path, seed: int, centre_shift: float = 0.0):
    """A toy boundary with the atoms within 3 Å of a core point pulled 20% towards it; the point (Å)."""
    s = toy_boundary(seed=seed, cells=(10, 2, 2), disorder=0.5, source=path.name)
    centre = np.array([s.positions[:, 0].max() / 2 + centre_shift, 3.5, 3.5])
    near = np.linalg.norm(s.positions - centre, axis=1) < 3.0
    s.positions[near] = centre + 0.8 * (s.positions[near] - centre)
    write_lammps_dump(path, s)
    return centre, s.ids[near]


def test_a_new_environment_is_novel_and_becomes_a_candidate(bundle, tmp_path, scheduler_address):
    plain = tmp_path / "plain.dump"
    write_lammps_dump(plain, toy_boundary(seed=7, cells=(10, 2, 2), disorder=0.5, source=plain.name))
    centre, squeezed = _compressed(tmp_path / "squeezed.dump", seed=7)
    result = predict_structures(bundle, [str(plain), str(tmp_path / "squeezed.dump")], tmp_path / "p",
                                PredictOptions(annotate=True), ClusterConfig(scheduler=scheduler_address))
    frame = result.predictions.set_index("id")
    assert frame.loc["squeezed", "novel_fraction"] > frame.loc["plain", "novel_fraction"]
    assert len(result.candidates) >= 1
    mine = result.candidates[result.candidates["gb"] == "squeezed"]
    assert set(mine["atom"]) & set(squeezed.tolist()), (mine, squeezed)
    assert (tmp_path / "p" / "candidates" / f"new{mine.index[0]}.extxyz").exists()
    import ase.io

    annotated = ase.io.read(tmp_path / "p" / "annotated" / "squeezed.extxyz")
    novel = annotated.arrays["novel"].astype(bool)
    assert novel.any() and (annotated.arrays["lae"][novel] == -1).all()
    assert set(annotated.arrays["atom_id"][novel]) & set(squeezed.tolist())


def test_bad_bundles_are_refused_by_name(bundle, tmp_path):
    with pytest.raises(GbdistError, match="not a model bundle"):
        load_bundle(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    meta = json.loads((broken / "bundle.json").read_text())
    (broken / "bundle.json").write_text(json.dumps(meta | {"bundle_version": 99}))
    with pytest.raises(GbdistError, match="bundle version 99"):
        load_bundle(broken)
    (broken / "bundle.json").write_text(json.dumps(meta))
    data = (broken / "unique_soap.npy").read_bytes()
    (broken / "unique_soap.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(GbdistError, match="unique_soap.npy differs"):
        load_bundle(broken)
    (broken / "unique_soap.npy").unlink()
    with pytest.raises(GbdistError, match="unique_soap.npy is missing"):
        load_bundle(broken)


def test_bad_predict_inputs_exit_2_naming_the_problem(bundle, learning_store, tmp_path, scheduler_address):
    store, _ = learning_store
    common = ["--scheduler", scheduler_address, "--no-verbose"]
    result = runner.invoke(app, ["predict", str(tmp_path), _sources(store)[0], "--out", str(tmp_path / "o"), *common])
    assert result.exit_code == 2 and "not a model bundle" in " ".join(result.output.split())
    import ase.io

    copper = tmp_path / "cu.extxyz"  # dumps are read as the bundle's element; extxyz carries its own
    s = toy_boundary(seed=1, cells=(10, 2, 2), source=copper.name)
    s.numbers[:] = 29
    ase.io.write(copper, s.to_ase(), format="extxyz")
    result = runner.invoke(app, ["predict", str(bundle), str(copper), "--out", str(tmp_path / "cu"), *common])
    assert result.exit_code == 2, result.output
    assert "cu.extxyz: element(s) Cu not among the model bundle's species (Ni)" in " ".join(result.output.split())
    no_match = tmp_path / "labels.csv"
    no_match.write_text("id,energy\nelsewhere,1.0\n")
    result = runner.invoke(app, ["predict", str(bundle), _sources(store)[0], "--labels", str(no_match),
                                 "--out", str(tmp_path / "nm"), *common])
    assert result.exit_code == 2 and "no id matches a predicted GB" in " ".join(result.output.split())
    assert not (tmp_path / "nm" / "predictions.csv").exists()


def test_a_store_with_other_parameters_is_refused(bundle, tmp_path, scheduler_address, toy_dumps):
    from gbdist.workflows.job import JobConfig, run_job

    other = tmp_path / "other.zarr"
    run_job(JobConfig(store=str(other), inputs=[str(p) for p in toy_dumps], soap={"n_max": 4, "l_max": 4},
                      cluster={"scheduler": scheduler_address}, stages=["soap", "asr"]))
    with pytest.raises(StoreError, match="other read/select/SOAP parameters"):
        predict_structures(bundle, None, tmp_path / "p", None, ClusterConfig(scheduler=scheduler_address),
                           store=str(other))


@pytest.mark.olmsted
def test_olmsted_hold_out_on_a_few_boundaries(tmp_path, scheduler_address):
    """Train on 10 Olmsted GBs, predict 4 others: every model applies, novelty is reported."""
    from gbdist.workflows.job import JobConfig, run_job

    train = [str(olmsted_dump(n)) for n in range(1, 11)]
    here = ClusterConfig(scheduler=scheduler_address)
    store = tmp_path / "train.zarr"
    run_job(JobConfig(store=str(store), inputs=train, read=OLMSTED_READ, select=OLMSTED_SELECT, cluster=here))
    train_store(str(store), str(OLMSTED), tmp_path / "bundle", LearnOptions(properties=["energy"]), here)
    unseen = [str(olmsted_dump(n)) for n in (301, 302, 303, 304)]
    result = predict_structures(tmp_path / "bundle", unseen, tmp_path / "p", PredictOptions(labels=str(OLMSTED)), here)
    p = result.predictions
    assert list(p["id"]) == ["ni.p301", "ni.p302", "ni.p303", "ni.p304"]
    assert p["energy_ASR_area"].between(0.0, 2.0).all() and p["novel_fraction"].between(0, 1).all()
    assert "energy" in result.scores and p["in_domain"].dtype == bool


def test_unreadable_structures_are_listed_and_the_rest_predicted(bundle, learning_store, tmp_path, scheduler_address):
    store, _ = learning_store
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"\x00\x01 not a dump\n")
    result = runner.invoke(app, ["predict", str(bundle), _sources(store)[0], str(garbage), "--out", str(tmp_path / "o"),
                                 "--scheduler", scheduler_address, "--no-verbose"])
    assert result.exit_code == 1, result.output
    assert "garbage.dump" in " ".join(result.output.split())
    predictions = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert list(predictions["id"]) == ["gb00"]
    assert "garbage.dump" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("layout", [None, "n1<=n2"])
def test_a_bundle_of_older_featomic_rows_is_refused_with_the_reason(layout):
    pytest.importorskip("featomic", reason="featomic is an optional extra (pip install -e '.[featomic]')")
    from types import SimpleNamespace

    from gbdist.stages.soap import SoapStageParams
    from gbdist.workflows.predict import _check_backend

    record = {"name": "featomic", "version": "0.6.7"} | ({"layout": layout} if layout else {})
    bundle = SimpleNamespace(path="models/bundle", params=SoapStageParams(soap={"backend": "featomic"}).model_dump(),
                             meta={"training": {"soap_backend": record}})
    why = "each GB's rows in ascending atom index" if layout else r"every \(n_1, n_2\)"
    with pytest.raises(GbdistError, match=f"models/bundle: trained on featomic rows of an older gbdist .*{why}.*retrain"):
        _check_backend(bundle)
    bundle.meta["training"]["soap_backend"] = record | {"layout": "n1<=n2, centre order"}
    _check_backend(bundle)  # this gbdist's own layout passes


def test_a_moved_store_whose_inputs_are_deleted_still_explains_maps_predicts_and_opens(
        bundle, learning_store, tmp_path, scheduler_address):
    from gbdist.explain.report import explain
    from gbdist.io import read_structure
    from gbdist.learning.labels import align_labels, load_labels
    from gbdist.store.dataset import open_store
    from gbdist.store.structures import structure_atoms
    from gbdist.workflows.job import JobConfig, run_job
    from gbdist.workflows.map import MapOptions, map_store

    made = tmp_path / "made"
    made.mkdir()
    paths, originals = [], []
    for i in range(6):
        path = made / f"mv{i}.dump"
        structure = toy_boundary(seed=90 + i, cells=(10, 2, 2), disorder=0.3 + 0.08 * i, source=path.name)
        write_lammps_dump(path, structure)
        paths.append(path)
        originals.append(read_structure(path))
    run_job(JobConfig(store=str(made / "s.zarr"), inputs=[str(p) for p in paths],
                      cluster={"scheduler": scheduler_address}))
    store = tmp_path / "elsewhere" / "s.zarr"
    shutil.move(made / "s.zarr", store)
    shutil.rmtree(made)  # the inputs are gone
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"id": [f"mv{i}" for i in range(6)], "disordered": [0, 0, 0, 1, 1, 1]}).to_csv(labels, index=False)

    ds = open_store(str(store))
    assert ds.sizes["atom"] == sum(len(s) for s in originals)
    atoms = structure_atoms(str(store), "mv2")
    np.testing.assert_array_equal(atoms.positions, originals[2].positions)
    np.testing.assert_array_equal(atoms.arrays["id"], originals[2].ids)

    prop = align_labels(load_labels(str(labels)), ds.gb.values, ["disordered"])[0]
    entries, _ = explain(str(store), prop, tmp_path / "explain", klass=1, top=2)
    assert entries and all("error" not in e and (tmp_path / "explain" / e["png"]).exists() for e in entries)

    cluster = ClusterConfig(scheduler=scheduler_address)
    result = map_store(str(store), tmp_path / "map", MapOptions(gb=["mv0"], chemiscope=str(tmp_path / "m.json.gz")),
                       cluster)
    assert result.chemiscope["environments"] > 0 and any("mv0" in p.name for p in result.pictures)

    predicted = predict_structures(bundle, None, tmp_path / "predict", PredictOptions(annotate=True), cluster,
                                   store=str(store))
    assert list(predicted.predictions["id"]) == [f"mv{i}" for i in range(6)]
    annotated = ase.io.read(tmp_path / "predict" / "annotated" / "mv3.extxyz")
    lo, hi = zarr.open_group(str(store), mode="r")["gb/offset"][3:5]
    assert len(annotated) == hi - lo

    # the predicted store on the training store's map, as a chemiscope dataset coloured by novelty
    pytest.importorskip("chemiscope", reason="chemiscope is an optional extra: pip install 'gbdist[chemiscope]'")
    base = tmp_path / "train.zarr"
    shutil.copytree(learning_store[0], base)
    map_store(str(base), tmp_path / "base-map", MapOptions(components=3), cluster)
    placed = map_store(str(store), tmp_path / "onto", MapOptions(onto=str(base), chemiscope=str(tmp_path / "o.json.gz")),
                       cluster)
    assigned = zarr.open_group(str(store), mode="r")["assigned/label"][:]
    assert placed.chemiscope["environments"] == len(assigned)  # fewer rows than a sample: all of them
    assert {"novel", "nearest unique LAE", "similarity"} <= set(placed.chemiscope["properties"])
