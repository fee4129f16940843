"""The notebooks run top to bottom on a small store and its saved results (nbclient, a real kernel)."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gbdist.cli import app

nbformat = pytest.importorskip("nbformat", reason="nbformat is a test dependency")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a test dependency")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
runner = CliRunner()


@pytest.fixture(scope="module")
def results(learning_store, tmp_path_factory, scheduler_address):
    """Table I (3 splits), a learning curve (2 points) and an explain report of the learning store."""
    store, labels = learning_store
    out = tmp_path_factory.mktemp("notebook-results")
    common = ["--store", str(store), "--labels", str(labels), "--scheduler", scheduler_address, "--no-verbose"]
    for args in (["evaluate", "--splits", "3", "--out", str(out / "table1")],
                 ["curve", "--property", "energy", "--fractions", "0.3,0.6", "--fits", "2",
                  "--out", str(out / "table1")]):
        result = runner.invoke(app, [*args, *common])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["explain", "--store", str(store), "--labels", str(labels), "--property",
                                 "disordered", "--class", "1", "--top", "3", "--out", str(out / "explain"),
                                 "--no-verbose"])
    assert result.exit_code == 0, result.output
    mapped = out / "mapped.zarr"  # the map goes into a copy: the shared store stays as the other tests expect it
    shutil.copytree(store, mapped)
    result = runner.invoke(app, ["map", "--store", str(mapped), "--out", str(out / "map"), "--chemiscope",
                                 str(out / "map" / "map.json.gz"), "--components", "3", "--scheduler",
                                 scheduler_address, "--no-verbose"])
    assert result.exit_code == 0, result.output
    return {"GBDIST_STORE": str(store), "GBDIST_RESULTS": str(out / "table1"),
            "GBDIST_EXPLAIN": str(out / "explain"), "GBDIST_CHEMISCOPE": str(out / "map" / "map.json.gz")}


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [
        "01-explore-a-store.ipynb", "02-table1-and-learning-curve.ipynb", "03-building-blocks.ipynb"]


@pytest.mark.parametrize("name", ["01-explore-a-store.ipynb", "02-table1-and-learning-curve.ipynb",
                                  "03-building-blocks.ipynb"])
def test_notebook_runs_top_to_bottom(name, results, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows the figures
    for key, value in results.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])), "it draws figures"
