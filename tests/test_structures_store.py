"""The store holds the structures: every atom parsed once into ``atoms/*``, and large structures cut
into spatial domains whose SOAP rows equal the whole-structure computation."""

import numpy as np
import pytest
import zarr

from gbdist.compute.domains import domain_grid, domain_order, halo_cells
from gbdist.compute.select import select_gb_region
from gbdist.compute.soap import SoapParams, soap_rows
from gbdist.io import read_structure
from gbdist.io.lammps import write_lammps_dump
from gbdist.store.structures import ATOM_CHUNK, layouts, structure_atoms
from gbdist.workflows.job import run_job

from conftest import make_job, toy_boundary


def _rows_by_atom(group, gb: int) -> dict[int, np.ndarray]:
    lo, hi = group["gb/offset"][gb], group["gb/offset"][gb + 1]
    raw = group["soap"][lo:hi] * group["lae/soap_norm"][lo:hi][:, None]
    return dict(zip(group["lae/atom"][lo:hi].tolist(), raw))


@pytest.mark.parametrize("periodic_normal", [False, True])
def test_a_structure_cut_into_domains_gives_the_whole_structure_rows(tmp_path, scheduler_address, periodic_normal):
    # 4,704 atoms, 94 × 25 × 25 Å; cut along the open (or periodic) x and the periodic y, z
    structure = toy_boundary(seed=3, cells=(24, 7, 7), source="big.dump")
    if periodic_normal:
        structure.pbc[:] = True
        structure.cell[0, 0] -= 10.0
    path = tmp_path / "big.dump"
    write_lammps_dump(path, structure)
    select = {"type_column": "c_cna", "type_convention": "lammps", "rule": "extent", "normal": "x"}
    whole, cut = tmp_path / "whole.zarr", tmp_path / "cut.zarr"
    run_job(make_job(whole, [path], scheduler_address, select=select, chunk_rows=64, stages=["soap"]))
    run_job(make_job(cut, [path], scheduler_address, select=select, chunk_rows=64, stages=["soap"],
                     split_atoms=1000, domain_atoms=150))
    a, b = zarr.open_group(str(whole), mode="r"), zarr.open_group(str(cut), mode="r")
    assert list(a["gb/grid"][0]) == [1, 1, 1]
    grid = b["gb/grid"][0]
    assert grid[0] > 2 and grid[1] > 1 and grid[2] > 1, grid
    # rows in domain order there, atom-id order here; the same rows, to float32 rounding
    assert not np.array_equal(a["lae/atom"][:], b["lae/atom"][:])
    rows_a, rows_b = _rows_by_atom(a, 0), _rows_by_atom(b, 0)
    assert rows_a.keys() == rows_b.keys()
    direct = np.array([rows_a[k] for k in rows_a])
    np.testing.assert_allclose(np.array([rows_b[k] for k in rows_a]), direct, rtol=1e-5,
                               atol=1e-6 * np.abs(direct).max())
    # each domain's centres are contiguous rows
    layout = layouts(b)[0]
    domain = np.searchsorted(layout.domains, b["lae/site"][:] - layout.atom_start, side="right") - 1
    assert (np.diff(domain) >= 0).all()


def test_the_store_holds_every_atom_and_column_of_the_inputs(tmp_path, scheduler_address):
    paths = []
    for i, cells in enumerate([(42, 20, 20), (14, 3, 3)]):  # 67,200 and 504 atoms: they share a chunk
        s = toy_boundary(seed=i, cells=cells, source=f"gb{i}.dump")
        if i == 1:
            s.extras["c_pe"] = np.linspace(-4.45, -3.9, len(s))
        paths.append(tmp_path / f"gb{i}.dump")
        write_lammps_dump(paths[-1], s)
    store = tmp_path / "s.zarr"
    run_job(make_job(store, paths, scheduler_address, stages=["soap"],
                     select={"type_column": "c_cna", "type_convention": "lammps"}))
    g = zarr.open_group(str(store), mode="r")
    assert g.attrs["atom_columns"] == ["c_cna", "c_pe", "type"]
    assert g["atoms/position"].shape[0] == sum(len(read_structure(p)) for p in paths) > ATOM_CHUNK
    for gb, path in enumerate(paths):
        s = read_structure(path)
        atoms = structure_atoms(g, gb)
        np.testing.assert_array_equal(atoms.arrays["id"], s.ids)
        np.testing.assert_array_equal(atoms.positions, s.positions - s.origin)
        np.testing.assert_array_equal(atoms.numbers, s.numbers)
        np.testing.assert_array_equal(atoms.cell[:], s.cell)
        np.testing.assert_array_equal(atoms.pbc, s.pbc)
        np.testing.assert_array_equal(atoms.arrays["type"], s.extras["type"])
        if "c_pe" in s.extras:
            np.testing.assert_array_equal(atoms.arrays["c_pe"], s.extras["c_pe"])
        else:
            assert np.isnan(atoms.arrays["c_pe"]).all()
        sel = select_gb_region(s, _select())
        np.testing.assert_array_equal(atoms.arrays["structure_type"], sel.atom_types)
        lo, hi = g["gb/offset"][gb], g["gb/offset"][gb + 1]
        np.testing.assert_array_equal(g["atoms/id"][:][g["lae/site"][lo:hi]], g["lae/atom"][lo:hi])


def _select():
    from gbdist.compute.select import SelectParams

    return SelectParams(type_column="c_cna", type_convention="lammps")


def test_domain_grid_never_cuts_thinner_than_the_halo_and_the_halo_wraps():
    s = toy_boundary(seed=0, cells=(24, 7, 7))
    assert list(domain_grid(s, 6.0)) == [1, 1, 1]
    grid = domain_grid(s, 6.0, split_atoms=10, domain_atoms=1)
    heights = np.diag(s.cell)
    assert (heights / grid >= 6.0).all() and (heights / (grid + 1) < 6.0).any()
    order, offsets = domain_order(s, grid)
    assert sorted(order) == list(range(len(s))) and offsets[-1] == len(s)
    # a domain on the open end has no neighbour beyond it; along periodic y the neighbours wrap
    cells = halo_cells(np.array([0]), grid, s.pbc)
    assert len(cells) == 2 * 3 * 3
    assert any(shift[1] == -1 for _, _, shift in cells) and all(shift[0] == 0 for _, _, shift in cells)


def test_soap_rows_of_a_domain_environment_equal_the_whole_structure(tmp_path):
    # the kernel alone, no cluster: a triclinic, fully periodic cell
    from gbdist.store.structures import StructureLayout, centre_environment

    s = toy_boundary(seed=5, cells=(18, 6, 6))
    s.pbc[:] = True
    s.cell[1, 0] = 3.0  # skewed
    grid = domain_grid(s, 6.6, split_atoms=10, domain_atoms=400)
    order, offsets = domain_order(s, grid)
    stored = {"atoms/position": s.positions[order], "atoms/number": s.numbers[order].astype(np.uint8)}
    layout = StructureLayout(0, 0, len(s), s.cell, s.origin, s.pbc, grid, offsets)
    sites = np.concatenate([np.arange(offsets[0], offsets[1], 7), [offsets[-2]]])  # the first domain, one of the last
    env, centres = centre_environment(stored, layout, sites, 6.6, "skewed")
    params = SoapParams(crop=False)
    cut, _ = soap_rows(env, centres, params, ["Ni"], -1)
    whole, _ = soap_rows(s, order[sites], params, ["Ni"], -1)
    assert len(env) < len(s)
    np.testing.assert_allclose(cut, whole, rtol=1e-5, atol=1e-6 * np.abs(whole).max())
