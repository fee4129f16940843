"""Symmetric tilt grain boundaries in fcc metals, built from CSL geometry and relaxed with EMT.

A symmetric tilt boundary with tilt axis t and boundary-plane normal n (n ⟂ t, both integer
directions of the cubic cell) joins grain A (x > 0) to its mirror image through the plane
x = 0 (grain B). For a centrosymmetric lattice the mirror equals a rotation by the
misorientation θ about t, and the period in the plane is that of the coincidence-site lattice,
so the bicrystal is periodic along y = t × n and z = t; x is open, with free surfaces.

Each boundary is tried at several rigid-body translations of B in the plane and several
thresholds for removing B atoms that crowd A atoms; every trial is relaxed with EMT (asap3;
ASE's EMT where asap3 is missing) and the lowest-energy one is kept. The GB energy (J/m²) is
the sum of per-atom energies over bulk, Σ (e_i − e_bulk) / A, over the atoms more than
``surface_skin`` Å from either free surface.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.lattice.cubic import FaceCenteredCubic
from ase.neighborlist import neighbor_list
from ase.optimize import FIRE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gbdist.compute.site_energy import EMT_ELEMENTS, emt_calculator
from gbdist.errors import GbdistError

EV_PER_A2_TO_J_PER_M2 = 16.021766
AXES = {"100": (1, 0, 0), "110": (1, 1, 0), "111": (1, 1, 1)}


class GenerateParams(BaseModel):
    """What to build: element and lattice constant (Å), tilt axes, Miller-index bound, sizes (Å).

    The lattice constant defaults to the EMT equilibrium (Ni: 3.50 Å, vs 3.52 Å in experiment),
    so the grains carry no strain that relaxation could release and book as negative GB energy.
    """

    model_config = ConfigDict(extra="forbid")
    element: str = "Ni"
    lattice_constant: float | None = Field(None, gt=0, description="Å; default: the EMT equilibrium")
    axes: list[str] = ["100", "110", "111"]
    max_index: int = Field(7, ge=1)
    max_period: float = Field(25.0, gt=0, description="largest in-plane CSL period kept, Å")
    min_period: float = Field(12.0, gt=0, description="in-plane cell edges are repeated to at least this, Å")
    grain_thickness: float = Field(22.0, gt=0, description="each grain, along the normal, Å")
    slab: float = Field(6.0, ge=0, description="end layers tagged as slabs (types 4, 5), Å")
    surface_skin: float = Field(8.0, ge=0, description="atoms this close to a surface are left out of the energy, Å")
    translations: int = Field(3, ge=1, description="rigid-body shifts per in-plane direction")
    overlap_factors: list[float] = [0.5, 0.9]
    fmax: float = Field(0.05, gt=0, description="relaxation force tolerance, eV/Å")
    max_steps: int = Field(1000, ge=1)
    limit: int | None = Field(None, ge=1, description="keep at most this many boundaries (lowest Σ first)")
    alloy: dict[str, float] = Field({}, description="element → atomic fraction substituted at random before each "
                                    "relaxation (EMT elements); the energy is then the excess over the random alloy")

    @model_validator(mode="after")
    def _emt_knows_the_elements(self):
        unknown = sorted({self.element, *self.alloy} - EMT_ELEMENTS)
        if unknown:
            raise ValueError(f"EMT (the generator's relaxation) does not describe {', '.join(unknown)}; "
                             f"use {', '.join(sorted(EMT_ELEMENTS))}")
        return self


@dataclass(frozen=True)
class TiltBoundary:
    """One symmetric tilt boundary: axis t, plane normal n (integer, cubic frame), θ (degrees), Σ."""

    axis: tuple[int, int, int]
    normal: tuple[int, int, int]
    angle: float
    sigma: int

    @property
    def name(self) -> str:
        t = "".join(map(str, self.axis))
        n = "".join(str(v).replace("-", "m") for v in self.normal)
        return f"stgb_{t}_s{self.sigma}_{n}"


def csl_sigma(normal) -> int:
    """Σ of the symmetric tilt boundary on plane ``normal`` in a cubic lattice: h²+k²+l², halved while even."""
    sigma = int(sum(v * v for v in normal))
    while sigma % 2 == 0:
        sigma //= 2
    return sigma


def _primitive(v: np.ndarray) -> np.ndarray:
    g = np.gcd.reduce(np.abs(v[v != 0])) if np.any(v) else 1
    return v // g


def _reference_normal(axis: tuple[int, int, int]) -> np.ndarray:
    """A mirror-plane normal of the cubic crystal perpendicular to ``axis`` (θ is measured from it)."""
    return {(1, 0, 0): np.array([0, 1, 0]), (1, 1, 0): np.array([0, 0, 1]), (1, 1, 1): np.array([1, -1, 0])}[axis]


def tilt_angle(axis, normal) -> float:
    """Misorientation θ (degrees) of the mirror bicrystal on plane ``normal``: twice its angle to a mirror plane."""
    r = _reference_normal(tuple(axis))
    n = np.asarray(normal, float)
    cos = abs(n @ r) / (np.linalg.norm(n) * np.linalg.norm(r))
    return float(2 * np.degrees(np.arccos(np.clip(cos, -1, 1))))


def lattice_period(direction, a: float) -> float:
    """Shortest fcc lattice translation (Å) along an integer direction: a|d|/2 if h+k+l is even, else a|d|."""
    d = _primitive(np.asarray(direction))
    return float(a * np.linalg.norm(d) / (2 if d.sum() % 2 == 0 else 1))


def plane_periods(axis, normal, a: float) -> tuple[float, float]:
    """In-plane CSL periods (Å) of the boundary: along axis × normal (y) and along the axis (z)."""
    return lattice_period(np.cross(axis, normal), a), lattice_period(axis, a)


def _directions(axis, normal) -> list[list[int]]:
    n, t = np.array(normal), np.array(axis)
    y = _primitive(np.cross(t, n))
    return [n.tolist(), y.tolist(), t.tolist()]


def _axis_symmetry(axis) -> list[np.ndarray]:
    """Cubic point-group operations (signed permutations) that map ``axis`` to ±itself."""
    t = np.array(axis)
    ops = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            op = np.zeros((3, 3), int)
            op[range(3), perm] = signs
            if np.array_equal(np.abs(op @ t), np.abs(t)) and (np.array_equal(op @ t, t) or np.array_equal(op @ t, -t)):
                ops.append(op)
    return ops


def enumerate_boundaries(params: GenerateParams) -> list[TiltBoundary]:
    """Distinct symmetric tilt boundaries, smallest Σ first.

    Cubic-equivalent planes are one boundary (the mirror bicrystal depends on the plane
    alone), listed under the first tilt axis that contains it; θ is the smallest over the
    planes equivalent under the symmetries that keep that axis. Planes with no misorientation and planes
    whose CSL period exceeds ``max_period`` are left out.
    """
    found: dict[tuple, TiltBoundary] = {}
    skipped: set[tuple] = set()
    m = params.max_index
    for name in params.axes:
        axis = AXES[name]
        ops = _axis_symmetry(axis)
        for normal in itertools.product(range(-m, m + 1), repeat=3):
            n = np.array(normal)
            if not np.any(n) or n @ np.array(axis) != 0 or math.gcd(*map(abs, normal)) != 1:
                continue
            images = [op @ n for op in ops] + [-(op @ n) for op in ops]
            # the mirror bicrystal depends on the plane alone: cubic-equivalent planes are one boundary
            key = tuple(sorted(int(v) for v in np.abs(n)))
            if key in found or key in skipped:
                continue
            skipped.add(key)
            angle = round(min(tilt_angle(axis, i) for i in images), 2)
            if angle < 1.0:
                continue
            if max(plane_periods(axis, n, params.lattice_constant)) > params.max_period:
                continue
            if csl_sigma(n) > 1:  # Σ1: the plane is a mirror of the crystal, no boundary
                found[key] = TiltBoundary(axis, max(tuple(int(v) for v in i) for i in images), angle, csl_sigma(n))
    boundaries = sorted(found.values(), key=lambda b: (b.sigma, b.axis, b.angle))
    return boundaries[: params.limit] if params.limit else boundaries


def build_bicrystal(boundary: TiltBoundary, params: GenerateParams, shift=(0.0, 0.0),
                    overlap: float = 0.7) -> tuple[Atoms, np.ndarray]:
    """Unrelaxed bicrystal: grain A (x > 0), its mirror B (x < 0) shifted by ``shift`` (fractions
    of the in-plane periods); B atoms closer than ``overlap`` × the nearest-neighbour distance
    to an A atom are removed. Returns the atoms (open along x) and the grain of each (1 or 2)."""
    a = params.lattice_constant
    unit = FaceCenteredCubic(directions=_directions(boundary.axis, boundary.normal), size=(1, 1, 1),
                             symbol=params.element, latticeconstant=a, pbc=(False, True, True))
    edges = np.abs(np.diag(unit.cell[:]))
    repeat = (max(1, math.ceil(params.grain_thickness / edges[0])),
              max(1, math.ceil(params.min_period / edges[1])), max(1, math.ceil(params.min_period / edges[2])))
    grain_a = unit.repeat(repeat)
    grain_a.positions[:, 0] -= grain_a.positions[:, 0].min()
    grain_b = grain_a.copy()
    grain_b.positions[:, 0] *= -1
    grain_b.positions[:, 1] += shift[0] * edges[1]
    grain_b.positions[:, 2] += shift[1] * edges[2]
    atoms = grain_a + grain_b
    thickness = grain_a.positions[:, 0].max()
    cell = np.diag([2 * thickness + 20.0, grain_a.cell[1, 1], grain_a.cell[2, 2]])
    atoms.set_cell(np.abs(cell))
    atoms.positions[:, 0] += thickness + 10.0
    atoms.pbc = (False, True, True)
    atoms.wrap()
    grain = np.repeat([1, 2], [len(grain_a), len(grain_b)])
    i, j = neighbor_list("ij", atoms, overlap * a / math.sqrt(2))
    crowded = np.unique(j[(grain[i] == 1) & (grain[j] == 2)])
    keep = np.setdiff1d(np.arange(len(atoms)), crowded)
    return atoms[keep], grain[keep]


def emt_lattice_constant(element: str, guess: float = 3.5) -> float:
    """EMT equilibrium lattice constant (Å) of an fcc element: vertex of a parabola fitted to E(a)."""
    grid = guess * np.linspace(0.97, 1.03, 13)
    energies = []
    for a in grid:
        atoms = FaceCenteredCubic(size=(3, 3, 3), symbol=element, latticeconstant=a)
        atoms.calc = emt_calculator()
        energies.append(atoms.get_potential_energy() / len(atoms))
    c2, c1, _ = np.polyfit(grid, energies, 2)
    return float(-c1 / (2 * c2))


def resolved(params: GenerateParams) -> GenerateParams:
    """``params`` with the lattice constant filled in (EMT equilibrium when not given)."""
    if params.lattice_constant is not None:
        return params
    from ase.data import atomic_numbers, reference_states

    guess = reference_states[atomic_numbers[params.element]].get("a", 3.5)
    return params.model_copy(update={"lattice_constant": round(emt_lattice_constant(params.element, guess), 4)})


def substitute(atoms, alloy: dict[str, float], seed: int = 0) -> None:
    """Replace, at random, the given atomic fraction of the atoms by each element of ``alloy`` (in place)."""
    from ase.data import atomic_numbers

    if not alloy:
        return
    rng = np.random.default_rng(seed)
    numbers = atoms.numbers.copy()
    free = np.arange(len(atoms))
    for element, fraction in alloy.items():
        if not 0 < fraction < 1:
            raise GbdistError(f"alloy {element}: the fraction must be between 0 and 1, not {fraction}")
        chosen = rng.choice(free, size=int(round(fraction * len(atoms))), replace=False)
        numbers[chosen] = atomic_numbers[element]
        free = np.setdiff1d(free, chosen)
    atoms.numbers = numbers


def bulk_energy_per_atom(params: GenerateParams) -> float:
    """EMT energy per atom (eV) of the perfect crystal at the lattice constant; of an alloy, of the
    random alloy (6 × 6 × 6 cubic cells, atoms relaxed in the fixed cell)."""
    atoms = FaceCenteredCubic(size=(6, 6, 6) if params.alloy else (4, 4, 4), symbol=params.element,
                              latticeconstant=params.lattice_constant)
    if params.alloy:
        substitute(atoms, params.alloy)
        relax(atoms, params)
    atoms.calc = emt_calculator()
    return float(atoms.get_potential_energy() / len(atoms))


def relax(atoms: Atoms, params: GenerateParams) -> Atoms:
    """Relax all atoms with FIRE under EMT to ``fmax``; positions change in place."""
    atoms.calc = emt_calculator()
    FIRE(atoms, logfile=None).run(fmax=params.fmax, steps=params.max_steps)
    return atoms


def gb_energy(atoms: Atoms, e_bulk: float, surface_skin: float) -> float:
    """GB energy, J/m²: Σ (e_i − e_bulk) over atoms farther than ``surface_skin`` from both
    surfaces, divided by the boundary area (the y–z cell face)."""
    x = atoms.positions[:, 0]
    inner = (x > x.min() + surface_skin) & (x < x.max() - surface_skin)
    area = float(np.linalg.norm(np.cross(atoms.cell[1], atoms.cell[2])))
    return float((atoms.get_potential_energies()[inner] - e_bulk).sum() / area * EV_PER_A2_TO_J_PER_M2)


@dataclass
class RelaxedBoundary:
    """The lowest-energy relaxed trial of a boundary: atoms, grain types (1, 2, 4, 5), energy, trial."""

    boundary: TiltBoundary
    atoms: Atoms
    types: np.ndarray
    energy: float
    shift: tuple[float, float]
    overlap: float
    trials: int


def relax_boundary(boundary: TiltBoundary, params: GenerateParams, e_bulk: float) -> RelaxedBoundary:
    """Try every rigid-body translation and overlap threshold; keep the lowest GB energy."""
    steps = np.arange(params.translations) / params.translations
    best = None
    trials = 0
    for shift in itertools.product(steps, steps):
        for overlap in params.overlap_factors:
            atoms, grain = build_bicrystal(boundary, params, shift, overlap)
            substitute(atoms, params.alloy)
            relax(atoms, params)
            energy = gb_energy(atoms, e_bulk, params.surface_skin)
            trials += 1
            if best is None or energy < best[0]:
                best = (energy, atoms, grain, (float(shift[0]), float(shift[1])), overlap)
    energy, atoms, grain, shift, overlap = best
    x = atoms.positions[:, 0]
    types = grain.copy()
    types[x < x.min() + params.slab] = 4
    types[x > x.max() - params.slab] = 5
    return RelaxedBoundary(boundary, atoms, types, energy, shift, overlap, trials)
