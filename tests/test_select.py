"""The paper's GB-region selection rule, on toy structures and on the real data."""

import numpy as np
import pytest
from ase.build import bulk

from gbdist.compute.cna import FCC, compute_cna
from gbdist.compute.select import SelectParams, boundary_normal, select_gb_region
from gbdist.errors import StructureError
from gbdist.io import ReadParams, read_structure
from gbdist.structure import Structure

from conftest import OLMSTED_READ, olmsted_dump, toy_boundary


def test_rule_pads_the_non_fcc_extent():
    s = toy_boundary()
    sel = select_gb_region(s, SelectParams(pad=4.0))
    x = s.positions[:, 0]
    core = (s.extras["c_cna"] != FCC) & ~np.isin(s.extras["type"], [4, 5])
    lo, hi = x[core].min(), x[core].max()
    assert sel.extent == (lo, hi)
    expected = np.flatnonzero((x >= lo - 4.0) & (x <= hi + 4.0))
    assert sorted(sel.centres) == sorted(expected)
    assert np.all(np.diff(s.ids[sel.centres]) > 0), "centres are ordered by atom id"
    np.testing.assert_array_equal(sel.cna, s.extras["c_cna"][sel.centres])


def test_computed_cna_when_the_file_has_none():
    with_column = toy_boundary(with_cna=True)
    without = toy_boundary(with_cna=False)
    np.testing.assert_array_equal(select_gb_region(without).centres, select_gb_region(with_column).centres)


def test_asap3_cna_of_perfect_fcc_is_fcc():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((4, 4, 4))
    s = Structure.from_ase(atoms, "fcc")
    assert np.all(compute_cna(s) == FCC)


def test_perfect_crystal_has_no_boundary():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((6, 3, 3))
    s = Structure.from_ase(atoms, "perfect.dump")
    s.pbc = np.array([False, True, True])
    s.extras["type"] = np.where(s.positions[:, 0] < 5, 4, np.where(s.positions[:, 0] > 12, 5, 1))
    with pytest.raises(StructureError, match="perfect.dump: no atoms with CNA ≠ fcc"):
        select_gb_region(s)


def test_normal_detection():
    s = toy_boundary()
    assert boundary_normal(s) == 0
    s.pbc = np.array([True, True, True])
    with pytest.raises(StructureError, match="cannot detect the boundary normal"):
        boundary_normal(s)
    assert boundary_normal(s, "z") == 2


def test_olmsted_gb1_has_1188_laes():
    sel = select_gb_region(read_structure(olmsted_dump(1), ReadParams(**OLMSTED_READ)))
    assert len(sel.centres) == 1188
    assert sel.normal == 0
