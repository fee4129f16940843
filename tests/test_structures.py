"""Every lattice, cell and chemistry: structure types (PTM and declared columns), bulk lattice and its
constant, the extent and distance rules, free surfaces, flat boundaries and the generators."""

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list

from gbdist.compute.crystal import (
    BCC,
    FCC,
    HCP,
    OTHER,
    SC,
    bulk_lattice,
    column_types,
    lattice_constant,
    ptm_types,
)
from gbdist.compute.select import SelectParams, flat_boundaries, region_rule, select_gb_region, surface_depth
from gbdist.datasets.polycrystal import PolycrystalParams, build_polycrystal
from gbdist.errors import StructureError
from gbdist.io import read_structure
from gbdist.structure import Structure

from conftest import toy_boundary

BCC_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bcc"


def _structure(atoms, name="s", **extras) -> Structure:
    s = Structure.from_ase(atoms, name)
    s.extras.update(extras)
    return s


@pytest.mark.parametrize("element, lattice, code, kw", [
    ("Cu", "fcc", FCC, {"cubic": True}), ("W", "bcc", BCC, {"cubic": True}), ("Mg", "hcp", HCP, {}),
    ("Po", "sc", SC, {"a": 3.35})])
def test_ptm_types_every_lattice_even_in_one_thin_cell(element, lattice, code, kw):
    """A single unit cell (2.9–3.6 Å thick, below any neighbour cutoff) is replicated, not refused."""
    atoms = bulk(element, lattice, **kw)
    assert np.all(ptm_types(_structure(atoms)) == code)
    assert np.all(ptm_types(_structure(atoms.repeat((4, 4, 4)))) == code)


@pytest.mark.parametrize("element, lattice, a", [("Ni", "fcc", 3.52), ("W", "bcc", 3.165), ("Mg", "hcp", 3.21)])
def test_lattice_constant_from_first_shell_bonds(element, lattice, a):
    atoms = bulk(element, "hcp", a=a, c=a * np.sqrt(8 / 3)) if lattice == "hcp" else bulk(element, lattice, a=a, cubic=True)
    s = _structure(atoms.repeat((3, 3, 3)))
    assert lattice_constant(s, np.arange(len(s)), lattice) == pytest.approx(a, abs=1e-3)


def test_declared_conventions_read_each_number_their_way():
    s = _structure(bulk("Ni", "fcc", a=3.52, cubic=True).repeat((2, 1, 1)), c_cna=np.array([0, 1, 2, 3, 4, 5, 1, 1]))
    np.testing.assert_array_equal(column_types(s, "c_cna", "lammps"), [OTHER, FCC, HCP, BCC, 4, OTHER, FCC, FCC])
    np.testing.assert_array_equal(column_types(s, "c_cna", "ovito"), [OTHER, FCC, HCP, BCC, 4, SC, FCC, FCC])
    s.extras["c_cna"] = np.array([1, 1, 1, 7, 1, 1, 1, 1])
    with pytest.raises(StructureError, match=r"s: column 'c_cna' holds \[7\], not structure types of the 'lammps'"):
        column_types(s, "c_cna", "lammps")
    with pytest.raises(StructureError, match="no per-atom column 'StructureType'"):
        select_gb_region(s, SelectParams(type_column="StructureType", type_convention="ovito"))


def test_bulk_lattice_is_the_most_common_or_given():
    assert bulk_lattice(np.array([BCC, BCC, FCC, OTHER]), "f") == "bcc"
    assert bulk_lattice(np.array([BCC, BCC, FCC, OTHER]), "f", "fcc") == "fcc"
    with pytest.raises(StructureError, match="glass: no atom is fcc, bcc or hcp"):
        bulk_lattice(np.array([OTHER, SC, OTHER]), "glass")


def test_a_given_lattice_with_no_atom_of_it_is_refused():
    s = toy_boundary()
    with pytest.raises(StructureError, match="toy: no atom is bcc"):
        select_gb_region(s, SelectParams(lattice="bcc"))


def test_older_records_read_as_the_same_selection():
    """Stores and bundles written before structure types recorded ``cna_column``: the LAMMPS column,
    the extent rule, fcc."""
    old = SelectParams(**{"pad": 5.0, "normal": "auto", "cna_column": "c_cna", "slab_types": [4, 5],
                          "surface_skin": 6.0})
    assert (old.type_column, old.type_convention, old.rule, old.lattice) == ("c_cna", "lammps", "extent", "fcc")


def test_auto_rule_is_extent_for_one_open_axis_else_distance():
    s = toy_boundary()
    assert region_rule(s) == "extent" and select_gb_region(s).rule == "extent"
    s.pbc = np.array([True, True, True])
    assert region_rule(s) == "distance"
    assert region_rule(s, "extent") == "extent"


@pytest.fixture(scope="module")
def ni_polycrystal():
    atoms, grain, relaxed = build_polycrystal(PolycrystalParams(size=34.0, grains=4, max_steps=40))
    assert relaxed
    return _structure(atoms, "poly", grain=grain + 1)


def test_distance_rule_takes_every_atom_within_pad_of_the_core(ni_polycrystal):
    s = ni_polycrystal
    sel = select_gb_region(s, SelectParams(pad=3.0))
    types = ptm_types(s)
    core = np.flatnonzero(types != FCC)
    i, j = neighbor_list("ij", s.to_ase(), 3.0)
    expected = np.union1d(core, j[np.isin(i, core)])
    np.testing.assert_array_equal(np.sort(sel.centres), expected)
    assert (sel.rule, sel.lattice, sel.normal) == ("distance", "fcc", -1)
    assert np.isnan(sel.thickness) and np.isnan(sel.extent).all()
    assert 0.2 < len(core) / len(s) < len(sel.centres) / len(s) < 0.95, "the grain interiors are left out"


@pytest.mark.parametrize("element, lattice", [("W", "bcc"), ("Mg", "hcp")])
def test_polycrystals_of_other_lattices_find_their_lattice(element, lattice):
    atoms, grain, relaxed = build_polycrystal(PolycrystalParams(element=element, lattice=lattice, size=30.0, grains=3))
    assert not relaxed  # EMT knows neither: written as built
    sel = select_gb_region(_structure(atoms))
    assert sel.lattice == lattice and sel.host == element and len(sel.centres) < len(atoms)


def _periodic_bicrystal(layers: int) -> Structure:
    """A fully periodic Ni cell, 22 cubic cells (77 Å) along x, with ``layers`` disordered layers normal to x."""
    rng = np.random.default_rng(1)
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((22, 3, 3))
    x = atoms.positions[:, 0]
    for centre in (20.0, 58.0)[:layers]:
        near = np.abs(x - centre) < 2.0
        atoms.positions[near] += rng.uniform(-0.4, 0.4, size=(near.sum(), 3))
    return _structure(atoms, f"bicrystal{layers}")


@pytest.mark.parametrize("layers", [1, 2])
def test_flat_boundaries_of_a_periodic_cell_give_the_normal_and_thickness(layers):
    s = _periodic_bicrystal(layers)
    sel = select_gb_region(s)
    assert flat_boundaries(s, ptm_types(s) != FCC, 5.0) == (0, layers)
    assert (sel.rule, sel.normal) == ("distance", 0)
    # n_lae / (density × area × layers): the selected share of the cell height, per boundary
    assert sel.thickness == pytest.approx(len(sel.centres) / len(s) * s.cell[0, 0] / layers)
    assert 9.0 < sel.thickness < 20.0


def test_an_alloy_boundary_has_two_species_and_the_documented_row_length():
    from gbdist.compute.soap import SoapParams, n_features, soap_row_length
    from gbdist.datasets.generate import GenerateParams, build_bicrystal, enumerate_boundaries, relax, substitute

    params = GenerateParams(lattice_constant=3.5, limit=1, alloy={"Cu": 0.3}, max_steps=30)
    atoms, grain = build_bicrystal(enumerate_boundaries(params)[0], params)
    substitute(atoms, params.alloy)
    relax(atoms, params)
    s = _structure(atoms, "nicu", type=grain)
    assert sorted(set(atoms.get_chemical_symbols())) == ["Cu", "Ni"]
    assert np.mean(atoms.get_chemical_symbols() == np.array("Cu")) == pytest.approx(0.3, abs=0.01)
    sel = select_gb_region(s)
    assert (sel.rule, sel.lattice, sel.host) == ("extent", "fcc", "Ni") and 3.45 < sel.lattice_constant < 3.6
    for mode, k3 in (("off", 8658), ("mu1nu1", 5616), ("crossover", 3042), ("mu2", 1014)):
        soap = SoapParams(compression=mode)
        assert [n_features(soap, sp) for sp in (["Cu", "Ni"], ["Al", "Cu", "Ni"])] == [soap_row_length(soap, 2), k3]
    assert n_features(SoapParams(), ["Cu", "Ni"]) == 3900


def test_vacuum_across_a_periodic_cell_is_two_free_surfaces():
    """A slab in a fully periodic cell with 15 Å of vacuum: the surface atoms are not a boundary."""
    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat((2, 2, 10))
    atoms.cell[2, 2] += 15.0
    s = _structure(atoms, "slab")
    depth = surface_depth(s)
    assert depth.min() == pytest.approx(0.0, abs=1e-9) and depth.max() > 12
    with pytest.raises(StructureError, match="slab: no atom outside the end slabs and away from surfaces"):
        select_gb_region(s)


def _bcc_files(kind: str) -> list[Path]:
    files = sorted((BCC_DATA / kind).glob("*.vasp"))
    if not files:
        pytest.skip(f"real bcc data not found at {BCC_DATA / kind} (read from ../shared, never copied)")
    return files


def test_w_cells_one_boundary_between_two_surfaces_no_normal_given():
    """The DFT W cells are fully periodic, with a vacuum gap along z: one boundary and two free surfaces."""
    for path in _bcc_files("w"):
        s = read_structure(path)
        sel = select_gb_region(s)
        assert (sel.rule, sel.lattice, sel.host, sel.normal) == ("distance", "bcc", "W", 2), path.name
        assert 3.17 < sel.lattice_constant < 3.20
        assert np.all(surface_depth(s)[sel.centres] > 0.0)
        assert 0.1 < len(sel.centres) / len(s) < 0.35


def test_fe_cells_two_boundaries():
    for path in _bcc_files("fe"):
        s = read_structure(path)
        sel = select_gb_region(s)
        assert (sel.lattice, sel.normal) == ("bcc", 2) and np.isfinite(sel.thickness), path.name
        assert flat_boundaries(s, ptm_types(s) != BCC, 5.0) == (2, 2)


def test_a_store_of_two_lattices_has_a_seed_each_and_no_asr_area(tmp_path, scheduler_address):
    """A Ni and a W polycrystal in one store: two seeds (fcc Ni, bcc W at their own a), each the
    label of its own lattice's perfect rows; no boundary area, so ASR_area is refused with the reason."""
    import pandas as pd
    import zarr

    from gbdist.datasets.polycrystal import write_polycrystal
    from gbdist.errors import GbdistError
    from gbdist.workflows.job import run_job
    from gbdist.workflows.learning import learning_inputs

    from conftest import make_job

    paths = [write_polycrystal(PolycrystalParams(size=24.0, grains=3, max_steps=20), tmp_path / "in"),
             write_polycrystal(PolycrystalParams(element="W", lattice="bcc", size=24.0, grains=3), tmp_path / "in")]
    store = tmp_path / "two.zarr"
    report = run_job(make_job(store, paths, scheduler_address, soap={"n_max": 4, "l_max": 3}, lae={"eps": 0.05}))
    assert report.soap.structures == {"bcc · distance": 1, "fcc · distance": 1}
    seeds = report.lae.seeds
    assert [(s["lattice"], s["host"]) for s in seeds] == [("fcc", "Ni"), ("bcc", "W")]
    assert 3.4 < seeds[0]["a"] < 3.6 and 3.1 < seeds[1]["a"] < 3.2
    group = zarr.open_group(str(store), mode="r")
    labels, gb = group["lae_eps_0.0500/label"][:], group["lae/gb"][:]
    lattice_of_row = group["gb/lattice"][:][gb]
    assert set(np.unique(lattice_of_row[labels == 0])) == {"fcc"}
    assert set(np.unique(lattice_of_row[labels == 1])) == {"bcc"}
    assert np.isnan(group["gb/thickness"][:]).all()
    labels_csv = tmp_path / "labels.csv"
    pd.DataFrame({"id": group["gb/id"][:], "energy": [1.0, 2.0]}).to_csv(labels_csv, index=False)
    with pytest.raises(GbdistError, match="ASR_area needs a boundary area.*2 structure"):
        learning_inputs(str(store), str(labels_csv), representations=["ASR_area"])
