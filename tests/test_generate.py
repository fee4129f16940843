"""Generated tilt boundaries: CSL geometry, EMT energies that are physical, and the written set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gbdist.datasets.generate import (
    GenerateParams,
    TiltBoundary,
    bulk_energy_per_atom,
    csl_sigma,
    enumerate_boundaries,
    lattice_period,
    relax_boundary,
    resolved,
    tilt_angle,
)
from gbdist.io.read import read_structure


@pytest.fixture(scope="module")
def ni():
    params = resolved(GenerateParams(translations=2))
    return params, bulk_energy_per_atom(params)


def test_csl_geometry_of_known_boundaries():
    assert csl_sigma((0, 3, 1)) == 5 and csl_sigma((1, -1, 2)) == 3 and csl_sigma((1, -1, 1)) == 3
    assert tilt_angle((1, 0, 0), (0, 3, 1)) == pytest.approx(36.87, abs=0.01)
    assert tilt_angle((1, 1, 0), (1, -1, 1)) == pytest.approx(109.47, abs=0.01)
    assert lattice_period((1, 1, 0), 3.52) == pytest.approx(3.52 / np.sqrt(2))
    assert lattice_period((1, 0, 0), 3.52) == pytest.approx(3.52)


def test_enumeration_is_distinct_and_bounded():
    params = resolved(GenerateParams())
    boundaries = enumerate_boundaries(params)
    assert len(boundaries) >= 40
    planes = [tuple(sorted(np.abs(b.normal))) for b in boundaries]
    assert len(set(planes)) == len(planes)  # cubic-equivalent planes are one boundary
    assert all(b.sigma > 1 and 0 < b.angle < 180 for b in boundaries)
    assert {b.axis for b in boundaries} == {(1, 0, 0), (1, 1, 0), (1, 1, 1)}
    assert sigmas_include(boundaries, [3, 5, 7, 9, 11])


def sigmas_include(boundaries, sigmas):
    return set(sigmas) <= {b.sigma for b in boundaries}


def test_coherent_twin_is_the_lowest_and_a_general_boundary_is_typical(ni):
    params, e_bulk = ni
    twin = relax_boundary(TiltBoundary((1, 1, 0), (1, -1, 1), 109.47, 3), params, e_bulk)
    general = relax_boundary(TiltBoundary((1, 0, 0), (0, 3, 1), 36.87, 5), params, e_bulk)
    assert 0.0 <= twin.energy < 0.1  # Σ3 (111): a stacking change, almost no excess energy
    assert 0.6 <= general.energy <= 1.6  # Σ5 (310): a general high-angle boundary
    types = set(np.unique(general.types))
    assert types == {1, 2, 4, 5}


def test_generated_set_feeds_the_pipeline(tmp_path, scheduler_address):
    from distributed import Client

    from gbdist.datasets.tilt_set import generate_dataset

    params = GenerateParams(limit=3, translations=1, max_index=3)
    with Client(scheduler_address) as client:
        table = generate_dataset(client, params, tmp_path)
        again = generate_dataset(client, params, tmp_path)  # reused, not rebuilt
    assert len(table) == 3 and table.equals(again)
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert list(labels.columns) == ["id", "energy"] and len(labels) == 3
    assert (tmp_path / "energies.png").stat().st_size > 0
    structure = read_structure(tmp_path / "structures" / f"{labels['id'][0]}.dump.gz")
    assert {"type", "c_cna", "c_pe", "excess_energy"} <= set(structure.extras) and not structure.pbc[0]
    # the excess is the EMT energy less the bulk's, and summed it gives the table's energy (same skin rule)
    from gbdist.compute.site_energy import EMT, site_energies
    from gbdist.datasets.generate import EV_PER_A2_TO_J_PER_M2, bulk_energy_per_atom, resolved

    excess = structure.extras["excess_energy"]
    np.testing.assert_allclose(excess, structure.extras["c_pe"] - bulk_energy_per_atom(resolved(params)), atol=1e-5)
    np.testing.assert_allclose(structure.extras["c_pe"], site_energies(structure.to_ase(), EMT), atol=1e-5)
    x = structure.positions[:, 0]
    inner = (x > x.min() + params.surface_skin) & (x < x.max() - params.surface_skin)
    area = float(np.linalg.norm(np.cross(structure.cell[1], structure.cell[2])))
    np.testing.assert_allclose(excess[inner].sum() / area * EV_PER_A2_TO_J_PER_M2, table["energy"][0], rtol=1e-4)
