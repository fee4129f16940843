"""Per-atom EAM energies: their sum is ASE's total energy, a dimer by hand, and the Al99 potential's
fcc cohesive energy."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.eam import EAM
from scipy.interpolate import InterpolatedUnivariateSpline as spline

from gbdist.compute.site_energy import EMT, eam_site_energies, read_eam

from conftest import ROOT

AL99 = ROOT.parent / "shared" / "data" / "homer-al" / "Al99.eam.alloy.xz"


def _toy_eam() -> EAM:
    """A one-element EAM of analytic shape: f(r) = exp(−r), φ(r) = (3 − r)², F(ρ) = −√ρ; cutoff 3 Å."""
    r = np.linspace(0.0, 3.0, 301)
    rho = np.linspace(0.0, 2.0, 201)
    return EAM(elements=["Al"], embedded_energy=np.array([spline(rho, -np.sqrt(rho))]),
               electron_density=np.array([spline(r, np.exp(-r))]), phi=np.array([[spline(r, (3.0 - r) ** 2)]]),
               d_embedded_energy=np.array([spline(rho, -np.sqrt(rho)).derivative()]),
               d_electron_density=np.array([spline(r, np.exp(-r)).derivative()]),
               d_phi=np.array([[spline(r, (3.0 - r) ** 2).derivative()]]), cutoff=3.0, form="alloy")


def test_a_dimer_by_hand():
    dimer = Atoms("Al2", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[20, 20, 20], pbc=False)
    e = eam_site_energies(dimer, _toy_eam())
    by_hand = -np.sqrt(np.exp(-2.0)) + 0.5 * (3.0 - 2.0) ** 2
    np.testing.assert_allclose(e, [by_hand, by_hand], rtol=1e-6)


def test_site_energies_sum_to_ases_total_energy_in_a_periodic_skewed_cell():
    atoms = bulk("Al", "fcc", a=3.4).repeat((3, 3, 2))
    atoms.set_cell(atoms.cell[:] + [[0, 0, 0], [0.8, 0, 0], [0, 0, 0]], scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    eam = _toy_eam()
    atoms.calc = eam
    np.testing.assert_allclose(eam_site_energies(atoms, eam).sum(), atoms.get_potential_energy(), rtol=1e-9)


@pytest.mark.skipif(not AL99.exists(), reason=f"{AL99} not here (../shared/data/homer-al)")
def test_al99_gives_the_fcc_cohesive_energy_and_ases_total():
    eam = read_eam(AL99)
    crystal = bulk("Al", "fcc", a=4.05, cubic=True)
    np.testing.assert_allclose(eam_site_energies(crystal, eam), -3.36, atol=0.005)  # Mishin et al. 1999: 3.36 eV
    crystal = crystal.repeat(2)
    crystal.rattle(0.05, seed=2)
    crystal.calc = eam
    np.testing.assert_allclose(eam_site_energies(crystal, eam).sum(), crystal.get_potential_energy(), rtol=1e-9)


def test_a_bad_potential_file_is_named(tmp_path):
    from gbdist.errors import GbdistError

    with pytest.raises(GbdistError, match="not an EAM potential"):
        read_eam(tmp_path / "pot.txt")
    with pytest.raises(GbdistError, match="no such potential file"):
        read_eam(tmp_path / "Ni.eam.alloy")
    (tmp_path / "Cu.eam.alloy").write_text("three comment lines\nonly\n")
    with pytest.raises(GbdistError, match="Cu.eam.alloy: ASE cannot read it"):
        read_eam(tmp_path / "Cu.eam.alloy")


def test_emt_gives_site_energies_of_its_elements_only():
    from ase.build import bulk

    from gbdist.compute.site_energy import read_potential, site_energies
    from gbdist.errors import GbdistError

    emt = read_potential("emt")
    large = bulk("Ni", "fcc", a=3.52, cubic=True).repeat(4)
    large.rattle(0.05, seed=0)
    assert site_energies(large, emt).mean() > 0  # then a 4-atom cell: asap3 refused it after a large one
    np.testing.assert_allclose(site_energies(bulk("Ni", "fcc", a=3.52, cubic=True), emt), 0.0, atol=1e-3)  # EMT's zero
    with pytest.raises(GbdistError, match="element.s. W not described by EMT"):
        site_energies(bulk("W", "bcc", a=3.16, cubic=True), emt)


def _write_setfl(path, element: str, a: float) -> None:
    """A one-element setfl file of the toy EAM's shape (f = e^−r, φ = (3 − r)², F = −√ρ; cutoff 3 Å)."""
    n_rho, d_rho, n_r, d_r = 2001, 0.002, 3001, 0.001
    rho, r = np.arange(n_rho) * d_rho, np.arange(n_r) * d_r
    lines = ["toy EAM", "for gbdist tests", "setfl", f"1 {element}", f"{n_rho} {d_rho} {n_r} {d_r} 3.0",
             f"28 58.69 {a} fcc"]
    lines += [f"{v:.12e}" for v in np.concatenate([-np.sqrt(rho), np.exp(-r), r * (3.0 - r) ** 2])]
    path.write_text("\n".join(lines) + "\n")


def test_the_site_energy_stage_writes_each_atoms_excess_and_the_boundary_energies(tmp_path, toy_dumps,
                                                                                   scheduler_address):
    from gbdist.compute.crystal import perfect_crystal
    from gbdist.stages.client import ClusterConfig
    from gbdist.store.structures import gb_structure
    from gbdist.workflows.job import run_job
    from gbdist.workflows.sites import SiteEnergyOptions, site_energies

    from conftest import make_job

    store = tmp_path / "s.zarr"
    run_job(make_job(store, toy_dumps, scheduler_address, stages=["soap"]))
    potential = tmp_path / "Ni.eam.alloy"
    _write_setfl(potential, "Ni", 3.52)
    cluster = ClusterConfig(scheduler=scheduler_address)
    result = site_energies(str(store), tmp_path / "out", SiteEnergyOptions(potential=str(potential), window=4.0),
                           cluster)
    assert not result.report.failures and result.report.atoms == sum(len(read_structure_file(p)) for p in toy_dumps)
    import zarr

    group = zarr.open_group(str(store), mode="r")
    eam = read_eam(potential)
    for gb in range(len(toy_dumps)):
        s = gb_structure(group, gb)
        bulk = eam_site_energies(perfect_crystal("Ni", str(group["gb/lattice"][gb]),
                                                 float(group["gb/lattice_constant"][gb])), eam).mean()
        np.testing.assert_allclose(s.extras["excess_energy"], eam_site_energies(s.to_ase(), eam) - bulk, rtol=1e-12)
    table = result.boundaries
    assert list(table.index) == [str(i) for i in group["gb/id"][:]] and np.isfinite(table["energy"]).all()
    assert (table["atoms"] > 0).all() and (tmp_path / "out" / "boundaries.csv").exists()

    _write_setfl(tmp_path / "Cu.eam.alloy", "Cu", 3.61)  # no Ni in it: every structure fails, by name
    failed = site_energies(str(store), tmp_path / "out2", SiteEnergyOptions(potential=str(tmp_path / "Cu.eam.alloy")),
                           cluster)
    assert len(failed.report.failures) == len(toy_dumps)
    assert "element(s) Ni not in the potential (Cu)" in failed.report.failures[0]["error"]

    from gbdist.compute.site_energy import site_energies as energies_of

    emt = site_energies(str(store), tmp_path / "out3", SiteEnergyOptions(potential="emt", column="emt_excess"), cluster)
    assert not emt.report.failures and np.isfinite(emt.boundaries["energy"]).all()
    group = zarr.open_group(str(store), mode="r")
    s = gb_structure(group, 1)
    bulk = energies_of(perfect_crystal("Ni", str(group["gb/lattice"][1]), float(group["gb/lattice_constant"][1])),
                       EMT).mean()
    np.testing.assert_allclose(s.extras["emt_excess"], energies_of(s.to_ase(), EMT) - bulk, rtol=1e-12)


def read_structure_file(path):
    from gbdist.io import read_structure

    return read_structure(path)
