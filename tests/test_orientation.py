"""Grain orientations and tilt axes from nearest-neighbour bonds (gbdist.compute.orientation)."""

import re

import numpy as np
import pytest
from ase.build import bulk
from scipy.spatial.transform import Rotation

from gbdist.compute.orientation import (
    CUBIC_ROTATIONS,
    FCC_BONDS,
    bicrystal_tilt_axis,
    fcc_bonds,
    fcc_period,
    grain_orientation,
    miller,
    tilt_axis,
)

from conftest import OLMSTED, OLMSTED_READ, olmsted_dump


def _bonds(rotation: Rotation, rng, noise: float = 0.03) -> np.ndarray:
    """Bonds of 5 fcc atoms of a grain turned by ``rotation``, 2.49 Å long, with Gaussian noise (Å)."""
    ideal = np.tile(FCC_BONDS * 2.49, (5, 1))
    return rotation.apply(ideal) + rng.normal(0, noise, ideal.shape)


def _same_orientation(a: Rotation, b: Rotation) -> bool:
    """Equal up to the cube's symmetry."""
    return min(np.linalg.norm((a.inv() * b * Rotation.from_matrix(s)).as_rotvec()) for s in CUBIC_ROTATIONS) < 0.01


def test_grain_orientation_recovers_a_rotation_and_its_twin():
    rng = np.random.default_rng(0)
    for rotation in Rotation.random(20, random_state=1):
        assert _same_orientation(grain_orientation(_bonds(rotation, rng)), rotation)
        twin = rotation * Rotation.from_rotvec(np.pi / 3 * np.ones(3) / np.sqrt(3))  # 60° about [111]
        assert _same_orientation(grain_orientation(_bonds(twin, rng)), twin)
    assert grain_orientation(rng.normal(size=(60, 3))) is None  # not fcc: refused


def test_tilt_axis_of_a_symmetric_tilt_and_none_for_a_twist():
    lower, upper = Rotation.from_euler("z", 18.4349, degrees=True), Rotation.from_euler("z", -18.4349, degrees=True)
    axis = tilt_axis(lower, upper, np.array([1.0, 0, 0]))  # Σ5 (310)-type: 36.87° about [001], normal x
    assert axis is not None and abs(axis.angle - 36.9) < 0.1
    assert sorted(np.abs(axis.indices)) == [0, 0, 1] and np.allclose(np.abs(axis.direction), [0, 0, 1])
    assert tilt_axis(lower, upper, np.array([0, 0, 1.0])) is None  # the same turn about the normal: twist


def test_miller_and_period():
    assert list(miller(np.array([1.0, 1.0, 0.02]))) == [1, 1, 0]
    assert list(miller(np.array([-1.0, -1.0, -1.0]))) == [-1, -1, -1]
    assert fcc_period(np.array([1, 1, 0])) == pytest.approx(np.sqrt(2) / 2)  # ½[110]
    assert fcc_period(np.array([1, 0, 0])) == 1.0


def test_bicrystal_of_one_crystal_has_no_tilt_axis():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((10, 3, 3))
    fcc = np.ones(len(atoms), bool)
    bonds = fcc_bonds(atoms.positions, atoms.cell[:], atoms.pbc, np.arange(40))
    assert len(bonds) == 40 * 12
    assert bicrystal_tilt_axis(atoms.positions, atoms.cell[:], atoms.pbc, fcc, 0, (17.0, 18.0)) is None


def _olmsted_tilts(gb: int) -> list[tuple[tuple[int, ...], float]]:
    """Olmsted's tilt descriptions of boundary ``gb`` (axis family, angle °) from supplement/fcc1-2.txt."""
    found, current = [], None
    for line in (OLMSTED / "supplement" / "fcc1-2.txt").read_text().splitlines():
        head = re.search(r"GB_index:\s*(\d+)", line)
        if head:
            current = int(head.group(1))
            continue
        parts = line.split()
        if current == gb and len(parts) == 13 and parts[11] == "tilt":
            found.append((tuple(sorted(abs(int(p)) for p in parts[:3])), float(parts[4])))
    return found


def _detect(gb: int):
    from gbdist.compute.crystal import FCC, structure_types
    from gbdist.compute.select import select_gb_region
    from gbdist.io.read import ReadParams, read_structure

    s = read_structure(olmsted_dump(gb), ReadParams(**OLMSTED_READ))
    selection = select_gb_region(s)
    return selection.normal, bicrystal_tilt_axis(s.positions, s.cell, s.pbc, structure_types(s) == FCC,
                                                 selection.normal, selection.extent)


@pytest.mark.parametrize("gb", [1, 7, 21, 28, 63, 140, 175, 385])  # <100>, <110>, <111>, <112>; 9.4° low angle
def test_tilt_axis_on_olmsted_matches_the_survey(gb):
    normal, axis = _detect(gb)
    tilts = [(family, angle) for family, angle in _olmsted_tilts(gb) if fcc_period(np.array(family)) <= 1.8]
    assert tilts, f"GB {gb} has no low-index tilt description in the survey"
    assert axis is not None and abs(axis.direction[normal]) < 0.02
    assert any(tuple(sorted(np.abs(axis.indices))) == family and abs(angle - axis.angle) < 0.5
               for family, angle in tilts), (axis.label, axis.angle, tilts)


@pytest.mark.parametrize("gb", [2, 3, 100])  # Σ5 and Σ3 twists, a Σ9 twist: no tilt view
def test_olmsted_twist_boundaries_have_no_tilt_axis(gb):
    assert _detect(gb)[1] is None
