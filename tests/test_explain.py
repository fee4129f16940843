"""Building blocks: ranking unique LAEs and writing them as extxyz clusters and pictures."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.compute.crystal import ptm_types
from gbdist.io.read import read_structure

runner = CliRunner()


def test_explain_writes_clusters_that_round_trip_through_ase(learning_store, tmp_path):
    store, labels = learning_store
    out = tmp_path / "explain"
    result = runner.invoke(app, ["explain", "--store", str(store), "--labels", str(labels), "--property",
                                 "disordered", "--class", "1", "--top", "3", "--out", str(out), "--no-verbose"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "explain.json").read_text())
    assert 1 <= len(report["top"]) <= 3 and (out / "report.md").exists() and (out / "overview.png").exists()
    for entry in report["top"]:
        assert set(entry["mean_fraction"]) == {"0", "1"} and entry["gbs_containing"] >= 1
        cluster = ase.io.read(out / entry["extxyz"])
        assert (out / entry["png"]).stat().st_size > 0
        assert (out / entry["boundary_png"]).stat().st_size > 10_000  # the LAE inside its boundary
        source = read_structure(store.parent / f"{entry['gb']}.dump")  # the file the store read
        where = {int(i): k for k, i in enumerate(source.ids)}
        rows = [where[int(i)] for i in cluster.arrays["atom_id"]]
        assert cluster.arrays["atom_id"][0] == entry["atom"]
        # each written atom is its source atom, relative to the centre, up to a periodic image shift
        shift = cluster.positions - (source.positions[rows] - source.positions[rows[0]])
        cells = np.linalg.solve(source.cell.T, shift.T).T
        np.testing.assert_allclose(cells, np.round(cells), atol=1e-6)
        assert np.all(np.round(cells)[:, ~source.pbc] == 0)
        np.testing.assert_array_equal(cluster.positions[0], 0.0)
        # the structure types the store selected with (PTM here: the job declared no column)
        np.testing.assert_array_equal(cluster.arrays["cna"], ptm_types(source)[rows])
        r_cut = 5.0
        assert np.all(np.linalg.norm(cluster.positions[1:], axis=1) < r_cut)
        assert entry["hcp_fraction"] == pytest.approx(np.mean(cluster.arrays["cna"] == 2))


def test_explain_rejects_an_unknown_class(learning_store, tmp_path):
    store, labels = learning_store
    result = runner.invoke(app, ["explain", "--store", str(store), "--labels", str(labels), "--property",
                                 "disordered", "--class", "7", "--out", str(tmp_path), "--no-verbose"])
    assert result.exit_code == 2 and "disordered: no class 7" in " ".join(result.output.split())


def test_boundary_slab_views_along_the_shortest_period_with_the_normal_up():
    from gbdist.explain.pictures import boundary_slab

    from conftest import toy_boundary

    s = toy_boundary(seed=0, cells=(14, 3, 2))  # open along x; y period 3 cells, z period 2 cells
    centre = int(np.argmin(np.linalg.norm(s.positions - s.positions.mean(axis=0), axis=1)))
    slab = boundary_slab(s.positions, s.cell, s.pbc, centre, 0, np.ones(len(s), np.int8))
    assert (slab.view, slab.normal) == ("box axis z", 0)  # one grain: no tilt axis, the shortest period
    assert np.allclose(slab.xy[np.argmin(np.linalg.norm(slab.xy, axis=1))], 0)  # the centre at the origin
    assert set(np.unique(slab.layer)) == {0, 1}  # fcc along [001]: two alternating planes (A, B)
