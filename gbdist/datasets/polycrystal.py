"""Voronoi polycrystals and substitutional alloys of any lattice, for tests and the demo.

Grains of a fcc, bcc or hcp crystal, each at a random orientation, fill the Voronoi cells of random
centres in a cubic box periodic along x, y and z; of two atoms closer than ``overlap`` nearest-neighbour
distances across a boundary one is removed. A grain whose cell meets its own periodic image (a box
with few grains) meets it through a boundary too, since a rotated lattice is not periodic in the box.
``alloy`` substitutes atoms at random (e.g. Ni with 30% Cu). Where EMT knows every element and the
lattice is fcc (Ni, Cu, Al, Ag, Au, Pd, Pt) the atoms are relaxed with asap3's EMT; otherwise they are
written as built. Dumps carry the grain of each atom (``grain``, from 1) and type 1 for every atom.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from gbdist.compute.crystal import NN_PER_A, perfect_crystal
from gbdist.compute.site_energy import EMT_ELEMENTS, emt_calculator
from gbdist.datasets.generate import emt_lattice_constant, substitute
from gbdist.errors import GbdistError

log = logging.getLogger(__name__)

class PolycrystalParams(BaseModel):
    """What to build: element, lattice and its constant (Å), grains, box edge (Å), alloy, relaxation."""

    model_config = ConfigDict(extra="forbid")
    element: str = "Ni"
    lattice: Literal["fcc", "bcc", "hcp"] = "fcc"
    lattice_constant: float | None = Field(None, gt=0, description="Å; default: the EMT equilibrium for EMT "
                                           "elements, else ASE's reference")
    grains: int = Field(8, ge=1)
    size: float = Field(80.0, gt=10, description="edge of the cubic periodic box, Å")
    alloy: dict[str, float] = Field({}, description="element → atomic fraction substituted at random")
    seed: int = 0
    overlap: float = Field(0.7, gt=0, lt=1, description="of two atoms closer than this × the nearest-neighbour "
                           "distance, one is removed")
    fmax: float = Field(0.1, gt=0, description="EMT relaxation force tolerance, eV/Å")
    max_steps: int = Field(300, ge=0)


def lattice_constant_of(params: PolycrystalParams) -> float:
    """The lattice constant to build with (Å): given, EMT's equilibrium (fcc EMT element) or ASE's reference."""
    from ase.data import atomic_numbers, reference_states

    if params.lattice_constant is not None:
        return params.lattice_constant
    ref = reference_states[atomic_numbers[params.element]] or {}
    if params.lattice == "fcc" and params.element in EMT_ELEMENTS:
        return round(emt_lattice_constant(params.element, ref.get("a", 3.5)), 4)
    if ref.get("symmetry") != params.lattice or "a" not in ref:
        raise GbdistError(f"{params.element} is not {params.lattice} in ASE's reference states: give lattice_constant")
    return float(ref["a"])


def _grain_atoms(unit, rotation: np.ndarray, centre: np.ndarray, L: float) -> np.ndarray:
    """Positions (m, 3) of the rotated crystal ``unit`` around ``centre`` within the cube of edge L centred there."""
    corners = np.array(list(itertools.product([-0.5, 0.5], repeat=3))) * L @ rotation  # lab → crystal frame
    frac = corners @ np.linalg.inv(unit.cell.array)
    lo, hi = np.floor(frac.min(axis=0)) - 1, np.ceil(frac.max(axis=0)) + 1
    grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    crystal = (grid @ unit.cell.array)[:, None, :] + unit.positions[None, :, :]
    lab = crystal.reshape(-1, 3) @ rotation.T
    return lab[np.all(np.abs(lab) < L / 2, axis=1)] + centre


def voronoi_polycrystal(params: PolycrystalParams):
    """(ase ``Atoms``, grain index (n,) int) of the unrelaxed polycrystal (periodic cubic box)."""
    from ase import Atoms

    rng = np.random.default_rng(params.seed)
    a, L = lattice_constant_of(params), params.size
    unit = perfect_crystal(params.element, params.lattice, a)
    centres = rng.uniform(0.0, L, size=(params.grains, 3))
    rotations = Rotation.random(params.grains, random_state=params.seed).as_matrix().reshape(-1, 3, 3)
    nearest = cKDTree(centres, boxsize=L)
    positions, grain = [], []
    for g in range(params.grains):
        lab = _grain_atoms(unit, rotations[g], centres[g], L) % L
        lab = np.where(lab >= L, lab - L, lab)
        mine = lab[nearest.query(lab)[1] == g]
        positions.append(mine)
        grain.append(np.full(len(mine), g))
    positions, grain = np.concatenate(positions), np.concatenate(grain)
    pairs = cKDTree(positions, boxsize=L).query_pairs(params.overlap * NN_PER_A[params.lattice] * a, output_type="ndarray")
    keep = np.setdiff1d(np.arange(len(positions)), pairs[:, 1]) if len(pairs) else np.arange(len(positions))
    atoms = Atoms(params.element + str(len(keep)), positions=positions[keep], cell=[L, L, L], pbc=True)
    return atoms, grain[keep]


def build_polycrystal(params: PolycrystalParams):
    """The polycrystal, alloyed and (where EMT allows) relaxed: (``Atoms``, grain (n,) int, relaxed bool)."""
    from ase.optimize import FIRE

    atoms, grain = voronoi_polycrystal(params)
    substitute(atoms, params.alloy, params.seed)
    relaxable = params.lattice == "fcc" and {params.element, *params.alloy} <= EMT_ELEMENTS and params.max_steps > 0
    if relaxable:
        atoms.calc = emt_calculator()
        FIRE(atoms, logfile=None).run(fmax=params.fmax, steps=params.max_steps)
        atoms.calc = None
        atoms.wrap()
    return atoms, grain, relaxable


def write_polycrystal(params: PolycrystalParams, folder: str | Path) -> Path:
    """Build one polycrystal and write it as a LAMMPS dump (``element`` and ``grain`` columns)."""
    from gbdist.io.lammps import write_lammps_dump
    from gbdist.structure import Structure

    atoms, grain, relaxed = build_polycrystal(params)
    alloy = "".join(f"-{el}{round(100 * f)}" for el, f in params.alloy.items())
    name = f"{params.element}{alloy}-{params.lattice}-{params.grains}g-{params.seed}.dump.gz"
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    structure = Structure.from_ase(atoms, name)
    structure.extras["grain"] = grain + 1
    write_lammps_dump(path, structure)
    log.info("%s: %d atoms, %d grains, %s", name, len(atoms), params.grains, "EMT-relaxed" if relaxed else "unrelaxed")
    return path
