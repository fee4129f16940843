"""The paper's GB-region selection rule, on toy structures and on the real data."""

import numpy as np
import pytest
from ase.build import bulk

from gbdist.compute.cna import compute_cna
from gbdist.compute.crystal import FCC
from gbdist.compute.select import SelectParams, boundary_normal, select_gb_region
from gbdist.errors import StructureError
from gbdist.io import ReadParams, read_structure
from gbdist.structure import Structure

from conftest import OLMSTED_READ, OLMSTED_SELECT, olmsted_dump, toy_boundary


def test_rule_pads_the_non_fcc_extent():
    s = toy_boundary()
    sel = select_gb_region(s, SelectParams(pad=4.0, type_column="c_cna", type_convention="lammps"))
    x = s.positions[:, 0]
    core = (s.extras["c_cna"] != FCC) & ~np.isin(s.extras["type"], [4, 5])
    lo, hi = x[core].min(), x[core].max()
    assert sel.extent == (lo, hi)
    expected = np.flatnonzero((x >= lo - 4.0) & (x <= hi + 4.0))
    assert sorted(sel.centres) == sorted(expected)
    assert np.all(np.diff(s.ids[sel.centres]) > 0), "centres are ordered by atom id"
    np.testing.assert_array_equal(sel.types, s.extras["c_cna"][sel.centres])
    assert (sel.rule, sel.lattice, sel.host, sel.lattice_constant) == ("extent", "fcc", "Ni", 3.52)
    assert sel.thickness == pytest.approx(hi - lo + 8.0)


def test_types_by_ptm_unless_a_column_is_declared():
    """Without a declared column the file's c_cna is not read: PTM types every atom, and its core
    lies in the disordered layer (|x - mid| < 3 Å, atoms moved by up to 0.35 Å)."""
    s = toy_boundary()
    s.extras["c_cna"][:] = 5  # a column that would make every atom 'other' if it were read
    sel = select_gb_region(s)
    mid = s.positions[:, 0].max() / 2 - 0.35  # the layer's atoms were displaced after mid was taken
    assert sel.lattice == "fcc" and mid - 3.5 <= sel.extent[0] and sel.extent[1] <= mid + 3.9
    with pytest.raises(ValueError, match="type_column and select.type_convention go together"):
        SelectParams(type_column="c_cna")


def test_asap3_cna_of_perfect_fcc_is_fcc():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((4, 4, 4))
    s = Structure.from_ase(atoms, "fcc")
    assert np.all(compute_cna(s) == FCC)


def test_perfect_crystal_has_no_boundary():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((6, 3, 3))
    s = Structure.from_ase(atoms, "perfect.dump")
    s.pbc = np.array([False, True, True])
    s.extras["type"] = np.where(s.positions[:, 0] < 5, 4, np.where(s.positions[:, 0] > 12, 5, 1))
    with pytest.raises(StructureError, match="perfect.dump: no atom outside the end slabs .* is other than fcc"):
        select_gb_region(s)


def test_normal_detection():
    s = toy_boundary()
    assert boundary_normal(s) == 0
    s.pbc = np.array([True, True, True])
    with pytest.raises(StructureError, match="cannot detect the boundary normal"):
        boundary_normal(s)
    assert boundary_normal(s, "z") == 2


@pytest.mark.parametrize("select", [OLMSTED_SELECT, {}], ids=["c_cna", "ptm"])
def test_olmsted_gb1_has_1188_laes(select):
    sel = select_gb_region(read_structure(olmsted_dump(1), ReadParams(**OLMSTED_READ)), SelectParams(**select))
    assert len(sel.centres) == 1188
    assert sel.normal == 0 and sel.rule == "extent" and sel.lattice_constant == 3.52
