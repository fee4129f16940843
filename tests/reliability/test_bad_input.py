"""Bad input: every kind gives a clear error naming the file (or key) and the problem, and the
good structures still finish."""

from __future__ import annotations

import pytest
import zarr
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.io.lammps import write_lammps_dump

from conftest import BACKENDS, toy_boundary

runner = CliRunner()
GOOD = ("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS ss pp pp\n0 10\n0 10\n0 10\n"
        "ITEM: ATOMS id type x y z\n1 1 1.0 2.0 3.0\n2 1 4.0 5.0 6.0\n")


def _perfect_slab() -> bytes:
    """A perfect Ni slab, open along x: every atom away from its surfaces is fcc (no boundary)."""
    from ase.build import bulk

    from gbdist.io.lammps import format_lammps_dump
    from gbdist.structure import Structure

    s = Structure.from_ase(bulk("Ni", "fcc", a=3.52, cubic=True).repeat((6, 2, 2)), "perfect.dump")
    s.pbc[0] = False
    return format_lammps_dump(s)



# file name → (content, the problem the error must state)
BAD_FILES = {
    "empty.dump": (b"", "empty file"),
    "truncated.dump": (GOOD[:GOOD.index("ITEM: ATOMS")].encode(), "truncated dump: no 'ITEM: ATOMS'"),
    "garbage.dump": (b"\x00\xff\xfe garbage \x12", "not a text structure file|ASE cannot read"),
    "missing_columns.dump": (GOOD.replace("id type x y z", "id type x y q").encode(), "no position columns"),
    "wrong_columns.dump": (GOOD.replace("1 1 1.0 2.0", "1 1 abc 2.0").encode(), "non-numeric"),
    "nan.dump": (GOOD.replace("4.0 5.0", "nan 5.0").encode(), "NaN or inf"),
    "inf.dump": (GOOD.replace("4.0 5.0", "inf 5.0").encode(), "NaN or inf"),
    "zero_atoms.dump": (GOOD.replace("NUMBER OF ATOMS\n2", "NUMBER OF ATOMS\n0").encode(), "zero atoms"),
    "perfect.dump": (_perfect_slab(), "no atom outside the end slabs and away from surfaces is other than fcc"),
    "count.dump": (GOOD.replace("NUMBER OF ATOMS\n2", "NUMBER OF ATOMS\n3").encode(), "atom count 2 ≠ header's 3"),
    "box.dump": (GOOD.replace("0 10\n0 10\n0 10", "0 10\n10 0\n0 10").encode(), "bad box"),
    "element.dump": (GOOD.replace("id type x y z", "id type element x y z").replace("1 1 1.0", "1 1 Qx 1.0")
                     .replace("2 1 4.0", "2 1 Ni 4.0").encode(), "unknown element 'Qx'"),
    "duplicate.dump": (GOOD.replace("2 1 4.0", "1 1 4.0").encode(), "duplicate atom ids"),
    "outside.dump": (GOOD.replace("4.0 5.0 6.0", "1e30 5.0 6.0").encode(),
                     "atom id 2 lies 1e\\+30 Å outside the box along x"),
    "overlap.dump": (GOOD.replace("4.0 5.0 6.0", "1.1 2.0 3.0").encode(), "atoms id 1 and id 2 are 0.1 Å apart"),
}


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_structure_files_are_named_and_the_good_one_finishes(tmp_path, scheduler_address, backend):
    import re

    good = tmp_path / "good.dump"
    write_lammps_dump(good, toy_boundary(source=good.name))
    for name, (content, _) in BAD_FILES.items():
        (tmp_path / name).write_bytes(content)
    store = tmp_path / "s.zarr"
    result = runner.invoke(app, ["soap", str(good), *(str(tmp_path / n) for n in BAD_FILES), "--store", str(store),
                                 "--element", "Ni", "--scheduler", scheduler_address, "--soap-backend", backend,
                                 "--no-verbose"])
    assert result.exit_code == 1, result.output
    text = _text(result)
    for name, (_, problem) in BAD_FILES.items():
        assert re.search(rf"{re.escape(name)}: ({problem})", text), (name, text[-2000:])
    assert f"{len(BAD_FILES)} failure(s)" in text
    group = zarr.open_group(str(store), mode="r")
    assert group["gb/id"][:].tolist() == ["good"] and group.attrs["stages"]["asr"]["done"]
    assert sorted(f["path"].rsplit("/", 1)[-1] for f in group.attrs["failures"]) == sorted(BAD_FILES)


def test_labels_that_match_no_structure(learning_store, tmp_path):
    store, labels = learning_store
    bad = tmp_path / "labels.csv"
    bad.write_text("id,energy\nnot_a_gb,1.0\n")
    result = runner.invoke(app, ["evaluate", "--store", str(store), "--labels", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "labels.csv: 1 id(s) match no structure in the store: not_a_gb" in _text(result)


def test_store_of_another_schema_version(tmp_path):
    store = tmp_path / "old.zarr"
    zarr.open_group(str(store), mode="w").attrs["schema_version"] = 0
    good = tmp_path / "good.dump"
    write_lammps_dump(good, toy_boundary(source=good.name))
    result = runner.invoke(app, ["soap", str(good), "--store", str(store), "--workers", "1"])
    assert result.exit_code == 2 and "old.zarr: written by store schema version 0" in _text(result)


def test_job_file_with_unknown_keys_and_wrong_types(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("store: s.zarr\ninputs: [a.dump]\nsoap: {n_max: many}\nbogus: 1\n")
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2
    assert "job.yaml: invalid job file" in _text(result) and "soap.n_max" in _text(result) and "bogus" in _text(result)


def test_store_path_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    good = tmp_path / "good.dump"
    write_lammps_dump(good, toy_boundary(source=good.name))
    store = blocker / "s.zarr"
    result = runner.invoke(app, ["soap", str(good), "--store", str(store), "--workers", "1"])
    assert result.exit_code == 2 and f"{store}: cannot write the store" in _text(result)
