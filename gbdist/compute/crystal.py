"""Crystal structure of the atoms: per-atom structure types, a structure's bulk lattice, its lattice
constant and its perfect crystal.

Types are gbdist's codes, those of LAMMPS ``compute cna/atom`` (1 fcc, 2 hcp, 3 bcc, 4 icosahedral,
5 other) plus 6 simple cubic. They come from polyhedral template matching (asap3's ``PTM``) or from a
column of the file read under a declared convention (``CONVENTIONS``), so a number is never misread.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial import cKDTree

from gbdist.errors import StructureError
from gbdist.io.checks import blocks, cell_heights
from gbdist.structure import Structure

FCC, HCP, BCC, ICO, OTHER, SC = 1, 2, 3, 4, 5, 6
NAMES = {FCC: "fcc", HCP: "hcp", BCC: "bcc", ICO: "ico", OTHER: "other", SC: "sc"}
LATTICES = {"fcc": FCC, "bcc": BCC, "hcp": HCP}
"""The bulk lattices gbdist knows: a structure's bulk is the most common of these types."""

CONVENTIONS = {
    "lammps": {0: OTHER, 1: FCC, 2: HCP, 3: BCC, 4: ICO, 5: OTHER},  # compute cna/atom (0 unknown)
    "ovito": {0: OTHER, 1: FCC, 2: HCP, 3: BCC, 4: ICO, 5: SC},  # CNA (0–4) and PTM (5 simple cubic)
    "gbdist": {FCC: FCC, HCP: HCP, BCC: BCC, ICO: ICO, OTHER: OTHER, SC: SC},
}
"""Structure-type column conventions: the file's number → gbdist's type."""

PTM_TYPES = np.array([OTHER, FCC, HCP, BCC, ICO, SC], np.int8)
"""asap3 PTM's ``structure`` (measured on perfect crystals: 0 none, 1 fcc, 2 hcp, 3 bcc, 4 ico, 5 sc;
the first table of its docstring has another order) → gbdist's type."""

PTM_RMSD_MAX = 0.1
"""Template matches with a larger RMSD are 'other' (OVITO's default cutoff)."""

PTM_JITTER = 1e-4
"""Å, standard deviation of a fixed-seed displacement of every atom before PTM: asap3's PTM calls some
atoms of an exactly perfect lattice (12 neighbours at one distance) bcc or none (10 of 17,712 in
Olmsted's ni.p1, whose LAMMPS CNA says fcc); 1e-4 Å breaks the exact ties (0 of them in the first six
Olmsted structures) and moves no atom measurably."""

PTM_CUTOFF = 1.6
"""PTM's neighbour cutoff, in nearest-neighbour distances (bcc's second shell is at 1.155)."""

NN_REACH = 6.0
"""Å searched for an atom's nearest neighbour (nearest-neighbour distances of the elements are below)."""


def complete_cell(structure: Structure) -> np.ndarray:
    """(3, 3) cell whose open axes with a degenerate vector get a unit vector normal to the others, so
    fractional coordinates along the periodic axes are defined."""
    cell = np.array(structure.cell, dtype=np.float64)
    for k in range(3):
        if not structure.pbc[k] and np.linalg.norm(cell[k]) < 1e-9:
            normal = np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])
            cell[k] = normal / np.linalg.norm(normal) if np.linalg.norm(normal) > 1e-9 else np.eye(3)[k]
    return cell


def fractional(structure: Structure, atoms: np.ndarray | None = None) -> np.ndarray:
    """Fractional coordinates (m, 3) of the ``atoms`` (indices, default all) in ``complete_cell``, wrapped
    into [0, 1) along the periodic axes."""
    positions = structure.positions if atoms is None else structure.positions[atoms]
    frac = (positions - structure.origin) @ np.linalg.inv(complete_cell(structure))
    frac[:, structure.pbc] %= 1.0
    frac[frac >= 1.0] = 0.0  # x % 1.0 is 1.0 for x just below 0
    return frac


def periodic_images(structure: Structure, reach: float, atoms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``atoms`` (indices, default all; wrapped into the cell along periodic axes) and their
    periodic images within ``reach`` Å of the cell: (positions (m, 3) float64, atom index of each
    (m,) int64), the atoms themselves first, in order. A kd-tree of these answers periodic neighbour
    queries of any cell, triclinic or thinner than ``reach``."""
    index0 = np.arange(len(structure)) if atoms is None else np.asarray(atoms, np.int64)
    pbc = np.asarray(structure.pbc, bool)
    if not pbc.any():
        return structure.positions[index0] - structure.origin, index0
    cell = complete_cell(structure)
    heights = cell_heights(cell)
    margin = np.where(pbc, reach / np.where(heights > 0, heights, 1.0), 0.0)
    ranges = [range(-int(np.ceil(m)), int(np.ceil(m)) + 1) if p else range(1) for m, p in zip(margin, pbc)]
    shifts = [np.array(shift, np.float64) for shift in itertools.product(*ranges) if any(shift)]
    parts, index = [[] for _ in shifts], [[] for _ in shifts]  # images by shift, in atom order
    for block in blocks(len(index0)):
        atoms_here = index0[block]
        frac = fractional(structure, atoms_here)
        near = np.flatnonzero(np.any(((frac < margin) | (frac >= 1.0 - margin)) & pbc, axis=1))  # only these have images
        for k, shift in enumerate(shifts):
            moved = frac[near] + shift
            keep = np.all((moved >= -margin) & (moved < 1.0 + margin) | ~pbc, axis=1)
            parts[k].append(moved[keep] @ cell)
            index[k].append(atoms_here[near][keep])
    images = [p for by_shift in parts for p in by_shift]
    out = np.empty((len(index0) + sum(len(p) for p in images), 3))
    for block in blocks(len(index0)):  # the atoms themselves, wrapped, straight into the result
        out[block] = fractional(structure, index0[block]) @ cell
    if images:
        out[len(index0):] = np.concatenate(images)
    return out, np.concatenate([index0, *(i for by_shift in index for i in by_shift)]).astype(np.int64)


def atoms_within(structure: Structure, atoms: np.ndarray, reach: float) -> np.ndarray:
    """Indices (ascending) of the atoms within ``reach`` Å of any of ``atoms`` ((n,) bool or indices),
    periodic images included (so each of ``atoms`` too). The structure is queried a block of atoms
    at a time: a kd-tree of ``atoms`` and their images, never (n, 3) temporaries of all atoms."""
    images, _ = periodic_images(structure, reach, np.flatnonzero(atoms) if atoms.dtype == bool else atoms)
    tree = cKDTree(images)
    found = []
    for block in blocks(len(structure)):
        own, _ = periodic_images(structure, 0.0, np.arange(block.start, block.stop))
        distance, _ = tree.query(own, k=1, distance_upper_bound=reach * (1 + 1e-12))
        found.append(np.flatnonzero(np.isfinite(distance)) + block.start)
    return np.concatenate(found)


def thick_supercell(structure: Structure, least: float):
    """ase ``Atoms`` of the structure, repeated along each periodic axis thinner than ``least`` Å until
    it is not; the original atoms come first (ase's repeat), so per-atom results of the first
    ``len(structure)`` atoms are the structure's."""
    atoms = structure.to_ase()
    heights = cell_heights(structure.cell)
    reps = [int(np.ceil(least / h)) if p and 0 < h < least else 1 for h, p in zip(heights, structure.pbc)]
    return atoms.repeat(reps) if max(reps) > 1 else atoms


def nearest_distances(structure: Structure, atoms: np.ndarray | None = None, reach: float = NN_REACH) -> np.ndarray:
    """Å to the nearest other atom (periodic images included) of ``atoms`` (indices; default all);
    inf where none is within ``reach``."""
    images, _ = periodic_images(structure, reach)
    own = images[:len(structure)]
    distance, _ = cKDTree(images).query(own if atoms is None else own[atoms], k=2, distance_upper_bound=reach)
    return distance[:, 1]


def typical_bond(structure: Structure, sample: int = 2000) -> float:
    """Median nearest-neighbour distance (Å) of up to ``sample`` atoms spread over the structure."""
    step = max(1, len(structure) // sample)
    d = nearest_distances(structure, np.arange(0, len(structure), step))
    d = d[np.isfinite(d)]
    if not len(d):
        raise StructureError(structure.source, f"no two atoms within {NN_REACH} Å: not a condensed structure")
    return float(np.median(d))


def ptm_types(structure: Structure) -> np.ndarray:
    """Structure type of every atom by polyhedral template matching (asap3), (n,) int8 in gbdist's codes.

    Cells thinner than twice the neighbour cutoff along a periodic axis are analysed as a replicated
    supercell whose first copy is the structure itself (as OVITO does). Atoms are displaced by
    ``PTM_JITTER`` first (a fixed seed: the same types every run).
    """
    from asap3.analysis import PTM

    cutoff = PTM_CUTOFF * typical_bond(structure)
    supercell = thick_supercell(structure, 2.0 * cutoff + 1.0)
    supercell.positions += np.random.default_rng(0).normal(scale=PTM_JITTER, size=supercell.positions.shape)
    found = PTM(supercell, cutoff=cutoff, rmsd_max=PTM_RMSD_MAX)["structure"][:len(structure)]
    return PTM_TYPES[np.asarray(found, np.int64)]


def column_types(structure: Structure, column: str, convention: str) -> np.ndarray:
    """The file's structure-type ``column`` read under ``convention`` (a key of ``CONVENTIONS``), (n,) int8.

    Raises
    ------
    StructureError
        If the file has no such column, or it holds a number the convention does not define.
    """
    if column not in structure.extras:
        raise StructureError(structure.source, f"no per-atom column {column!r} (select.type_column); "
                                               f"columns: {sorted(structure.extras)}")
    values = np.asarray(structure.extras[column])
    table = CONVENTIONS[convention]
    numbers = values.astype(np.int64)
    unknown = sorted(set(np.unique(numbers).tolist()) - set(table))
    if unknown or not np.array_equal(numbers, values):
        raise StructureError(structure.source, f"column {column!r} holds {unknown or 'non-integer values'}, not "
                                               f"structure types of the {convention!r} convention {table}")
    lookup = np.full(max(table) + 1, OTHER, np.int8)
    lookup[list(table)] = list(table.values())
    return lookup[numbers]


def structure_types(structure: Structure, column: str | None = None, convention: str | None = None) -> np.ndarray:
    """Per-atom structure types, (n,) int8: the file's ``column`` read under ``convention``, else PTM."""
    if column is None:
        return ptm_types(structure)
    return column_types(structure, column, convention)


def bulk_lattice(types: np.ndarray, source: str, lattice: str = "auto") -> str:
    """The structure's bulk lattice: ``lattice`` if given, else the most common of fcc, bcc and hcp.

    Raises
    ------
    StructureError
        If no atom is of a known lattice (an amorphous or unknown crystal).
    """
    if lattice != "auto":
        return lattice
    counts = {name: int(np.count_nonzero(types == code)) for name, code in LATTICES.items()}
    name = max(counts, key=counts.get)
    if counts[name] == 0:
        raise StructureError(source, "no atom is fcc, bcc or hcp: no bulk lattice to find the boundary in "
                                     "(give select.lattice, or check the structure-type column)")
    return name


NN_PER_A = {"fcc": 1 / np.sqrt(2.0), "bcc": np.sqrt(3.0) / 2.0, "hcp": 1.0}
"""Nearest-neighbour distance in units of the lattice constant a."""

HCP_C_OVER_A = np.sqrt(8.0 / 3.0)
"""The ideal c/a of the hcp seed."""


SHELL = {"fcc": 12, "bcc": 8, "hcp": 12}
"""Nearest neighbours of an atom of each lattice."""


def lattice_constant(structure: Structure, bulk: np.ndarray, lattice: str) -> float:
    """Lattice constant a (Å) of ``lattice`` from the median length of the first-shell bonds (the
    ``SHELL`` nearest neighbours) of the ``bulk`` atoms (indices; up to 20,000 of them), rounded to
    0.001 Å; NaN if there are none. Bonds of every bulk atom, not each atom's shortest, so atoms
    strained next to a boundary do not bias it."""
    if not len(bulk):
        return float("nan")
    sample = bulk[::max(1, len(bulk) // 20_000)]
    # a sample that is a small part of the structure: a tree of its neighbourhood alone (the same
    # bonds; a 10⁷-atom structure's tree of every atom and image held 0.45 GiB), else of every atom
    near = atoms_within(structure, sample, NN_REACH) if 4 * len(sample) < len(structure) else None
    images, _ = periodic_images(structure, NN_REACH, near)  # the atoms' own rows first, in order
    rows = sample if near is None else np.searchsorted(near, sample)
    d, _ = cKDTree(images).query(images[rows], k=SHELL[lattice] + 1, distance_upper_bound=NN_REACH)
    d = d[:, 1:][np.isfinite(d[:, 1:])]
    return round(float(np.median(d)) / NN_PER_A[lattice], 3) if len(d) else float("nan")


def perfect_crystal(element: str, lattice: str, a: float):
    """ase ``Atoms`` of the perfect ``lattice`` crystal of ``element`` at lattice constant ``a`` (Å; hcp
    at the ideal c/a); every atom is equivalent."""
    from ase.build import bulk

    if lattice == "hcp":
        return bulk(element, "hcp", a=a, c=a * HCP_C_OVER_A)
    return bulk(element, lattice, a=a, cubic=True)
