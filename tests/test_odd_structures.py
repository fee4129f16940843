"""Structures that are odd but valid (cells thinner than a cutoff, SOAP in memory-bounded batches)
and ones that are wrong (atoms outside the box, atoms on top of each other)."""

from __future__ import annotations

import numpy as np
import pytest

from gbdist.compute.cna import compute_cna
from gbdist.compute.select import SelectParams, select_gb_region
from gbdist.compute.soap import DSCRIBE_CENTRE_BYTES, SoapParams, centre_batch, soap_rows
from gbdist.errors import StructureError
from gbdist.io import read_structure
from gbdist.io.checks import cell_heights, check_inside_box, check_min_distance
from gbdist.io.lammps import write_lammps_dump
from gbdist.structure import Structure

from conftest import BACKENDS, ROOT, toy_boundary


def _repeat(structure: Structure, reps: tuple[int, int, int]) -> Structure:
    """``structure`` replicated ``reps`` times along its cell vectors (the original atoms first)."""
    atoms = structure.to_ase().repeat(reps)
    copies = np.prod(reps)
    return Structure(source="repeated", positions=atoms.positions + structure.origin, cell=atoms.cell[:],
                     pbc=structure.pbc, numbers=atoms.numbers,
                     ids=np.concatenate([structure.ids + c * 10**6 for c in range(copies)]),
                     origin=structure.origin, extras={"type": np.tile(structure.extras["type"], copies)})


def test_a_two_atom_thick_periodic_cell_is_analysed_as_its_replica():
    # one cubic fcc cell (3.52 Å, two atomic layers) along the periodic y and z: thinner than the
    # CNA's and SOAP's cutoffs; classes and rows must be those of the same atoms in a 4 × 4 replica
    thin = toy_boundary(seed=3, cells=(14, 1, 1), with_cna=False)
    assert cell_heights(thin.cell)[1:].max() < 4.0
    thick = _repeat(thin, (1, 4, 4))
    cna = compute_cna(thin)
    assert np.array_equal(cna, compute_cna(thick)[:len(thin)])
    assert (cna == 1).any() and (cna != 1).any()
    thin.extras["c_cna"] = cna
    sel = select_gb_region(thin, SelectParams())
    rows, _ = soap_rows(thin, sel.centres, SoapParams(), ["Ni"], sel.normal)
    reference, _ = soap_rows(thick, sel.centres, SoapParams(), ["Ni"], sel.normal)
    np.testing.assert_allclose(rows, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_centre_batches_give_the_same_rows_bit_for_bit(backend):
    structure = toy_boundary(seed=5)
    sel = select_gb_region(structure)
    params = SoapParams(backend=backend)
    whole, _ = soap_rows(structure, sel.centres, params, ["Ni"], sel.normal)
    # a budget of about 7 centres per call
    budget = 7 * (DSCRIBE_CENTRE_BYTES + 8 * whole.shape[1]) if backend == "dscribe" else 7 * 70_000
    batched, _ = soap_rows(structure, sel.centres, params, ["Ni"], sel.normal, budget_bytes=budget)
    assert np.array_equal(whole, batched)


def test_centre_batch_follows_the_budget():
    params = SoapParams()
    per_centre = DSCRIBE_CENTRE_BYTES + 8 * 1014
    assert centre_batch(4096, params, 1014, None) == 4096
    assert centre_batch(4096, params, 1014, 1 << 28) == (1 << 28) // per_centre
    assert centre_batch(4096, params, 1014, 10) == 1  # one centre is the least a call computes
    assert centre_batch(100, params, 1014, 1 << 40) == 100


def test_an_atom_outside_a_non_periodic_box_names_the_file_and_atom(tmp_path):
    s = toy_boundary(seed=1)
    s.positions[7, 0] = 1e30
    path = tmp_path / "far.dump"
    write_lammps_dump(path, s)
    with pytest.raises(StructureError, match=rf"far.dump: atom id {s.ids[7]} lies 1e\+30 Å outside the box along x"):
        read_structure(path)
    s.positions[7, 0] = s.cell[0, 0] + 0.5  # within the tolerance: accepted
    check_inside_box(s, tolerance=1.0)


def test_atoms_on_top_of_each_other_are_refused_across_periodic_faces_too():
    s = toy_boundary(seed=2, with_cna=False)
    check_min_distance(s)  # a real structure passes
    y = s.positions[:, 1]
    i, j = np.argmin(y), np.argmax(y)  # an atom at the lower face and one at the upper face
    s.positions[j] = s.positions[i] + np.array([0.0, s.cell[1, 1] - 0.2, 0.0])  # 0.2 Å from i's image
    with pytest.raises(StructureError, match=rf"toy: atoms id {s.ids[min(i, j)]} and id {s.ids[max(i, j)]} "
                                             r"are 0.2 Å apart|"
                                             rf"toy: atoms id {s.ids[max(i, j)]} and id {s.ids[min(i, j)]} are 0.2 Å apart"):
        check_min_distance(s)


@pytest.mark.parametrize("slab_atoms", [1 << 20, 64])  # whole, or 8 slabs across the 49 Å axis
def test_close_atoms_are_found_slab_by_slab_as_in_one_piece(monkeypatch, slab_atoms):
    from ase.build import bulk

    import gbdist.io.checks as checks

    monkeypatch.setattr(checks, "SLAB_ATOMS", slab_atoms)
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((3, 3, 14))  # periodic; z is the highest axis
    fresh = Structure.from_ase(atoms, "bulk")
    check_min_distance(fresh)
    z = fresh.positions[:, 2]
    cases = []
    i, j = np.argmin(z), np.argmax(z)  # across the periodic face of the slab axis, j one cell away (unwrapped)
    moved = fresh.positions.copy()
    moved[j] = moved[i] + np.array([0.0, 0.0, 2 * fresh.cell[2, 2] - 0.2])
    cases.append((moved, i, j, "0.2"))
    i, j = np.flatnonzero(np.isclose(z, 5.28))[:2]  # straddling the first slab edge (z = 6.16 Å)
    moved = fresh.positions.copy()
    moved[i, 2], moved[j] = 6.10, moved[i] * [1, 1, 0] + [0, 0, 6.25]
    cases.append((moved, i, j, "0.15"))
    for positions, i, j, d in cases:
        s = Structure("bulk", positions, fresh.cell, fresh.pbc, fresh.numbers, fresh.ids)
        with pytest.raises(StructureError, match=rf"bulk: atoms id ({s.ids[i]}|{s.ids[j]}) and id "
                                                 rf"({s.ids[i]}|{s.ids[j]}) are {d} Å apart"):
            check_min_distance(s)
    open_slab = toy_boundary(seed=2, with_cna=False)  # open along x, its highest axis
    check_min_distance(open_slab)
    y = open_slab.positions[:, 1]
    i, j = np.argmin(y), np.argmax(y)
    open_slab.positions[j] = open_slab.positions[i] + np.array([0.0, open_slab.cell[1, 1] - 0.2, 0.0])
    with pytest.raises(StructureError, match=r"toy: atoms id \d+ and id \d+ are 0.2 Å apart"):
        check_min_distance(open_slab)


BCC = ROOT.parent / "shared" / "data" / "bcc"


@pytest.mark.parametrize("name", ["w/POSCAR_s3_110_110.vasp", "fe/CHGNet_v0_3_0__Sigma3_1-11__relaxed.vasp"])
def test_real_fully_periodic_bcc_cells_thinner_than_the_cutoff_are_analysed(name):
    path = BCC / name
    if not path.exists():
        pytest.skip(f"real bcc data not found at {path.parent} (read from ../shared, never copied)")
    structure = read_structure(path)
    assert cell_heights(structure.cell).min() < 5.3  # thinner than asap3's CNA needs
    sel = select_gb_region(structure, SelectParams(normal="z"))
    rows, _ = soap_rows(structure, sel.centres, SoapParams(), sorted(set(structure.to_ase().get_chemical_symbols())),
                        sel.normal)
    assert rows.shape == (len(sel.centres), 1014) and np.isfinite(rows).all() and (np.abs(rows).sum(axis=1) > 0).all()
