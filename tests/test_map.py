"""``gbdist map``: the dask-ml PCA against scikit-learn's on the same rows, the stored coordinates,
the pictures and bad options."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from sklearn.decomposition import PCA
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.errors import GbdistError
from gbdist.stages.client import ClusterConfig
from gbdist.workflows.map import MapOptions, map_store

runner = CliRunner()


@pytest.mark.parametrize("solver", ["incremental", "tsqr"])
def test_dask_ml_pca_equals_scikit_learn(store_copy, tmp_path, scheduler_address, solver):
    store, labels = store_copy
    result = map_store(store, tmp_path / "map", MapOptions(components=5, solver=solver, labels=str(labels),
                                                          property="energy", gb=["gb03"]),
                       ClusterConfig(scheduler=scheduler_address))
    group = zarr.open_group(store, mode="r")
    rows = group["soap"][:].astype(np.float64)
    reference = PCA(n_components=5).fit(rows)
    np.testing.assert_allclose(result.pca.explained_variance_ratio, reference.explained_variance_ratio_, atol=1e-4)
    if solver == "tsqr":  # exact: every component equals scikit-learn's, up to sign
        signs = np.sign(np.sum(result.pca.components * reference.components_, axis=1))
        np.testing.assert_allclose(result.pca.components * signs[:, None], reference.components_, atol=1e-4)
    else:  # IncrementalPCA: the leading axes, up to sign (the 4th and 5th differ beyond 1e-4)
        for ours, theirs in zip(result.pca.components[:3], reference.components_[:3]):
            assert abs(float(ours @ theirs)) > 0.999
    coords = group["map/coords"][:]
    np.testing.assert_allclose(coords, (rows - rows.mean(axis=0)) @ result.pca.components.T, atol=1e-4)
    names = {p.name for p in result.pictures}
    assert names == {"map_density.png", "map_cna.png", "map_energy.png", "map_gb_gb03.png"}
    assert all((tmp_path / "map" / n).stat().st_size > 10_000 for n in names)
    assert "PC1" in result.report.read_text()


def test_map_options_are_checked(learning_store, tmp_path):
    store, labels = learning_store
    for args, flag in ((["--components", "1"], "--components"), (["--solver", "magic"], "--solver"),
                       (["--gb", "nowhere"], "--gb"), (["--property", "energy"], "--labels")):
        result = runner.invoke(app, ["map", "--store", str(store), "--out", str(tmp_path), *args, "--no-verbose"])
        assert result.exit_code == 2, result.output
        assert flag in " ".join(result.output.split())
    with pytest.raises(GbdistError, match="--class 7"):
        map_store(str(store), tmp_path, MapOptions(labels=str(labels), property="disordered", klass=7))


def test_a_store_placed_onto_another_stores_map(store_copy, tmp_path, scheduler_address):
    import shutil

    store, _ = store_copy
    other = str(tmp_path / "other.zarr")
    shutil.copytree(store, other)  # the same rows: they must land where the map's own rows are
    cluster = ClusterConfig(scheduler=scheduler_address)
    result = runner.invoke(app, ["map", "--store", other, "--onto", store, "--out", str(tmp_path / "x"),
                                 "--scheduler", scheduler_address, "--no-verbose"])
    assert result.exit_code == 2 and "no map there yet" in " ".join(result.output.split())
    base = map_store(store, tmp_path / "map", MapOptions(components=4), cluster)
    placed = map_store(other, tmp_path / "onto", MapOptions(onto=store, gb=["gb03"]), cluster)
    np.testing.assert_allclose(zarr.open_group(other)["map/coords"][:], zarr.open_group(store)["map/coords"][:],
                               atol=1e-5)
    np.testing.assert_array_equal(placed.pca.explained_variance_ratio, base.pca.explained_variance_ratio)
    assert {p.name for p in placed.pictures} == {"map_onto.png", "map_gb_gb03.png"}
    assert f"placed on the map of {store}" in placed.report.read_text()


def test_chemiscope_dataset_holds_every_unique_lae_inside_its_atoms(store_copy, tmp_path, scheduler_address):
    """The map as a chemiscope dataset: a sample with every unique LAE, each environment centred on its
    LAE's atom inside the boundary region cut from the source file; chemiscope loads it without warnings."""
    import gzip
    import json
    import warnings

    chemiscope = pytest.importorskip("chemiscope", reason="chemiscope is an optional extra: pip install "
                                     "'gbdist[chemiscope]'")
    import pandas as pd

    from gbdist.io.read import read_structure

    store, labels_csv = store_copy
    path = tmp_path / "map.json.gz"
    result = map_store(store, tmp_path / "map", MapOptions(components=3, chemiscope=str(path), chemiscope_size=1500,
                                                           labels=str(labels_csv)),
                       ClusterConfig(scheduler=scheduler_address))
    group = zarr.open_group(store, mode="r")
    labels, n_unique = group["lae_eps_0.0320/label"][:], group["lae_eps_0.0320/unique/count"].shape[0]
    data = json.load(gzip.open(path, "rt"))
    envs, props = data["environments"], data["properties"]
    assert result.chemiscope["environments"] == len(envs)
    assert 1500 - n_unique <= len(envs) <= 1500 < len(labels)  # each unique LAE's share is rounded down
    assert {int(v) for v in props["unique LAE"]["values"]} == set(range(n_unique))  # every unique LAE shown
    assert sorted(props) == ["PC1", "PC2", "PC3", "boundary", "c_cna", "disordered", "energy", "structure type", "type",
                             "unique LAE"]  # the labels of each boundary, the per-atom columns of each centre
    assert result.chemiscope["left_out"] == []
    labels = pd.read_csv(labels_csv, dtype={"id": str}).set_index("id")
    np.testing.assert_allclose(props["energy"]["values"], labels.loc[props["boundary"]["values"], "energy"])
    assert data["settings"]["map"]["color"]["property"] == "unique LAE"
    # each environment's centre is its LAE's atom: same element, and its neighbours within r_cut are there
    coords = group["map/coords"][:]
    gb_ids, sources = group["gb/id"][:], group["gb/source"][:]
    pc1 = np.asarray(props["PC1"]["values"])
    for k in (0, len(envs) // 2, len(envs) - 1):
        env = envs[k]
        row = int(np.flatnonzero(np.isclose(coords[:, 0], pc1[k], atol=1e-6))[0])
        gb = int(group["lae/gb"][row])
        assert props["boundary"]["values"][k] == str(gb_ids[gb])
        structure = read_structure(str(sources[gb]))
        centre = np.flatnonzero(structure.ids == int(group["lae/atom"][row]))[0]
        assert props["c_cna"]["values"][k] == structure.extras["c_cna"][centre]
        s = data["structures"][env["structure"]]
        x = np.array([s["x"][env["center"]], s["y"][env["center"]], s["z"][env["center"]]])
        np.testing.assert_allclose(x, structure.positions[centre] - structure.origin, atol=1e-6)
        assert env["cutoff"] == 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chemiscope.show_input(str(path))
