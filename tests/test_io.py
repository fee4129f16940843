"""LAMMPS dump reading: formats, compression, columns, boxes, and clear errors."""

import gzip
import lzma

import ase.io
import numpy as np
import pytest

from gbdist.errors import GbdistError, StructureError
from gbdist.io import ReadParams, expand_inputs, read_structure, structure_id
from gbdist.io.lammps import format_lammps_dump, write_lammps_dump

from conftest import OLMSTED_READ, olmsted_dump, toy_boundary


def test_round_trip_compressed_and_plain(tmp_path):
    s = toy_boundary()
    for suffix in (".dump", ".dump.gz", ".dump.xz", ".dump.bz2"):
        p = tmp_path / f"t{suffix}"
        write_lammps_dump(p, s)
        r = read_structure(p)
        np.testing.assert_allclose(r.positions, s.positions, atol=1e-6)
        np.testing.assert_array_equal(r.ids, s.ids)
        np.testing.assert_array_equal(r.extras["c_cna"], s.extras["c_cna"])
        np.testing.assert_array_equal(r.pbc, [False, True, True])
        assert set(r.numbers) == {28}


def test_matches_ase_on_real_dump():
    path = olmsted_dump(1)
    ours = read_structure(path, ReadParams(**OLMSTED_READ))
    theirs = ase.io.read(lzma.open(path, "rt"), format="lammps-dump-text")
    order = np.argsort(ours.ids)
    np.testing.assert_allclose(ours.positions[order], theirs.positions, atol=1e-9)
    np.testing.assert_allclose(np.diag(ours.cell), theirs.cell.lengths())
    np.testing.assert_array_equal(ours.pbc, theirs.pbc)
    np.testing.assert_array_equal(ours.extras["c_cna"][order], theirs.arrays["c_cna"])
    assert len(ours) == 17712


def test_column_order_extra_columns_and_timestep(tmp_path):
    head = "ITEM: TIMESTEP\n{t}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp ss\n0 10\n0 10\n-5 5\n"
    frame = head + "ITEM: ATOMS z c_pe element x id y\n1.0 -4.5 Ni 2.0 7 3.0\n2.0 -4.4 Al 5.0 3 6.0\n"
    p = tmp_path / "multi.dump"
    p.write_text(frame.format(t=0) + frame.format(t=100).replace("2.0 -4.4", "2.5 -4.4"))
    first = read_structure(p)
    np.testing.assert_allclose(first.positions, [[2.0, 3.0, 1.0], [5.0, 6.0, 2.0]])
    np.testing.assert_array_equal(first.numbers, [28, 13])
    np.testing.assert_array_equal(first.ids, [7, 3])
    np.testing.assert_allclose(first.extras["c_pe"], [-4.5, -4.4])
    np.testing.assert_array_equal(first.pbc, [True, True, False])
    later = read_structure(p, ReadParams(timestep=100))
    assert later.positions[1, 2] == 2.5
    with pytest.raises(StructureError, match="no timestep 5"):
        read_structure(p, ReadParams(timestep=5))


def test_triclinic_box_and_scaled_coordinates(tmp_path):
    text = ("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS xy xz yz pp pp pp\n"
            "0 12 2\n0 10 0\n0 10 0\nITEM: ATOMS id type xs ys zs\n1 1 0.5 0.5 0.5\n")
    p = tmp_path / "tri.dump"
    p.write_text(text)
    s = read_structure(p, ReadParams(type_map={1: "Cu"}))
    np.testing.assert_allclose(s.cell, [[10, 0, 0], [2, 10, 0], [0, 0, 10]])
    np.testing.assert_allclose(s.positions, [[6.0, 5.0, 5.0]])
    assert s.numbers[0] == 29
    back = read_structure_from_bytes(tmp_path, format_lammps_dump(s))
    np.testing.assert_allclose(back.cell, s.cell)


def read_structure_from_bytes(tmp_path, data: bytes):
    p = tmp_path / "again.dump"
    p.write_bytes(data)
    return read_structure(p, ReadParams(type_map={1: "Cu"}))


GOOD = ("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS ss pp pp\n0 10\n0 10\n0 10\n"
        "ITEM: ATOMS id type x y z\n1 1 1.0 2.0 3.0\n2 1 4.0 5.0 6.0\n")


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"\x00\xff\xfe garbage \x12", "not a text structure file|ASE cannot read"),
    (GOOD[:GOOD.index("2 1 4.0") + 5].encode(), "NaN or inf|missing"),
    (GOOD[:GOOD.index("ITEM: ATOMS")].encode(), "truncated dump: no 'ITEM: ATOMS'"),
    (GOOD[:GOOD.index("2 1 4.0")].encode(), "atom count 1 ≠ header's 2"),
    (GOOD.replace("NUMBER OF ATOMS\n2", "NUMBER OF ATOMS\n3").encode(), "atom count 2 ≠ header's 3"),
    (GOOD.replace("NUMBER OF ATOMS\n2", "NUMBER OF ATOMS\n0").encode(), "zero atoms"),
    (GOOD.replace("4.0 5.0", "nan 5.0").encode(), "NaN or inf"),
    (GOOD.replace("4.0 5.0", "inf 5.0").encode(), "NaN or inf"),
    (GOOD.replace("id type x y z", "id type x y q").encode(), "no position columns"),
    (GOOD.replace("2 1 4.0", "1 1 4.0").encode(), "duplicate atom ids"),
    (GOOD.replace("2 1 4.0", "2.5 1 4.0").encode(), "non-integer atom ids"),
    (GOOD.replace("0 10\n0 10\n0 10", "0 10\n10 0\n0 10").encode(), "bad box"),
    (GOOD.replace("0 10\n0 10\n0 10", "0 10\nzero ten\n0 10").encode(), "bad box"),
    (GOOD.replace("1 1 1.0 2.0", "1 1 abc 2.0").encode(), "non-numeric"),
    (GOOD.replace("id type x y z", "id type element x y z").replace("1 1 1.0", "1 1 Qx 1.0")
     .replace("2 1 4.0", "2 1 Ni 4.0").encode(), "unknown element 'Qx'"),
    (GOOD.encode(), r"the dump has no 'element' column: say which element its atoms are \(--element, or "
                    r"read.element in a job file\) or map its types to elements \(read.type_map\)"),
])
def test_bad_dumps_name_the_file_and_problem(tmp_path, content, message):
    p = tmp_path / "bad.dump"
    p.write_bytes(content)
    with pytest.raises(StructureError, match=message) as info:
        read_structure(p)
    assert str(info.value).startswith("bad.dump: ")


def test_a_dump_without_elements_is_read_only_as_told_and_gbdist_writes_its_elements(tmp_path):
    p = tmp_path / "plain.dump"
    p.write_text(GOOD)
    assert set(read_structure(p, ReadParams(element="Al")).numbers) == {13}
    assert set(read_structure(p, ReadParams(type_map={1: "Cu"})).numbers) == {29}
    written = tmp_path / "written.dump"
    write_lammps_dump(written, read_structure(p, ReadParams(element="Al")))
    assert "ITEM: ATOMS id type element x y z" in written.read_text()
    assert set(read_structure(written).numbers) == {13}  # no option needed: the file says it


def test_corrupt_archive_is_a_clear_error(tmp_path):
    p = tmp_path / "cut.dump.xz"
    p.write_bytes(lzma.compress(GOOD.encode())[:40])
    with pytest.raises(StructureError, match="cut.dump.xz: cannot read or decompress"):
        read_structure(p)
    g = tmp_path / "cut.dump.gz"
    g.write_bytes(gzip.compress(GOOD.encode())[:30])
    with pytest.raises(StructureError, match="cut.dump.gz: cannot read or decompress"):
        read_structure(g)


def test_ase_formats_are_read(tmp_path):
    s = toy_boundary(with_cna=False)
    p = tmp_path / "toy.extxyz"
    ase.io.write(p, s.to_ase())
    r = read_structure(p)
    np.testing.assert_allclose(r.positions, s.positions, atol=1e-8)
    assert len(r) == len(s)


def test_expand_inputs_and_ids(tmp_path):
    for n in (10, 2, 1):
        (tmp_path / f"ni.p{n}.out.xz").write_bytes(b"x")
    files = expand_inputs([str(tmp_path)])
    assert [structure_id(f) for f in files] == ["ni.p1", "ni.p2", "ni.p10"]
    assert expand_inputs([str(tmp_path / "ni.p1*.xz")])[-1].endswith("ni.p10.out.xz")
    with pytest.raises(GbdistError, match="nothing-here"):
        expand_inputs([str(tmp_path / "nothing-here*")])
