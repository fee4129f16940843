"""Sanity checks on the atoms of a structure as read: each refusal names the file and the atom id(s).

- atoms outside a non-periodic box by more than a tolerance (a box the file defines: LAMMPS);
- two atoms closer than ``MIN_DISTANCE`` (overlapping or duplicated atoms), periodic images included.
"""

from __future__ import annotations

import itertools

import numpy as np

from gbdist.errors import StructureError
from gbdist.structure import Structure

MIN_DISTANCE = 0.5
"""Å; no two atoms of a physical structure are closer (the shortest bond, H2's, is 0.74 Å)."""

AXIS_NAMES = "xyz"


def cell_heights(cell: np.ndarray) -> np.ndarray:
    """(3,) Å, the distance between the opposite faces of the cell along each cell vector
    (the thickness a neighbour search sees; 0 where the cell is degenerate)."""
    volume = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return np.divide(volume, areas, out=np.zeros(3), where=areas > 0)


BLOCK = 1 << 18
"""Atoms handled at a time by the checks and the other per-atom passes over a large structure
(its periodic images, its domains): no (n, 3) temporaries of a 10⁷-atom structure."""


def blocks(n: int) -> list[slice]:
    """Slices of ``BLOCK`` atoms covering range(n)."""
    return [slice(lo, min(lo + BLOCK, n)) for lo in range(0, n, BLOCK)]


def check_inside_box(structure: Structure, tolerance: float) -> None:
    """Refuse an atom farther than ``tolerance`` Å outside the box along a non-periodic axis.

    Raises
    ------
    StructureError
        Naming the file, the first such atom's id, the axis, its distance and the box.
    """
    open_axes = np.flatnonzero(~structure.pbc)
    heights = cell_heights(structure.cell)
    if not len(open_axes) or not heights.all():
        return
    inverse = np.linalg.inv(structure.cell)
    for axis in open_axes:
        frac = np.concatenate([(structure.positions[block] - structure.origin) @ inverse[:, axis]
                               for block in blocks(len(structure))])  # (n,), no (n, 3) temporaries
        outside = np.maximum(-frac, frac - 1.0) * heights[axis]
        bad = np.flatnonzero(outside > tolerance)
        if len(bad):
            i = bad[np.argmax(outside[bad])]
            lo = structure.origin[axis]
            raise StructureError(
                structure.source,
                f"atom id {structure.ids[i]} lies {outside[i]:.4g} Å outside the box along {AXIS_NAMES[axis]} "
                f"(non-periodic; box {lo:.6g} … {lo + structure.cell[axis, axis]:.6g} Å; {len(bad)} atom(s) more "
                f"than {tolerance:g} Å outside)")


SLAB_ATOMS = 1 << 20
"""Atoms above which the min-distance check goes slab by slab (a kd-tree of each slab and its
halo, not of every atom and image: 0.46 GiB for a 10⁷-atom structure)."""


def check_min_distance(structure: Structure, min_distance: float = MIN_DISTANCE) -> None:
    """Refuse two atoms closer than ``min_distance`` Å, across periodic boundaries too.

    Raises
    ------
    StructureError
        Naming the file, the two atom ids and their distance.
    """
    found = [pair for part, index in _slabs(structure, min_distance)
             if (pair := _closest_pair(part, min_distance, index)) is not None]
    if not found:
        return
    d, a, b = min(found)
    what = (f"atom id {structure.ids[a]} is {d:.3g} Å from its own periodic image (the cell is too thin)"
            if a == b else f"atoms id {structure.ids[a]} and id {structure.ids[b]} are {d:.3g} Å apart")
    raise StructureError(structure.source, f"{what}: closer than {min_distance} Å (overlapping or duplicated atoms)")


def _closest_pair(structure: Structure, min_distance: float, index: np.ndarray | None) -> tuple | None:
    """(distance Å, atom, atom) of the closest two points under ``min_distance``, images included,
    atoms as ``index`` (the structure's atoms' indices in a larger one; None: themselves); or None."""
    from scipy.spatial import cKDTree

    positions, image_of = _with_periodic_images(structure, min_distance)
    pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
    if not len(pairs):
        return None
    d = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
    n = len(structure)
    a, b = (int(k) if k < n else int(image_of[k - n]) for k in pairs[np.argmin(d)])
    return (float(d.min()), a, b) if index is None else (float(d.min()), int(index[a]), int(index[b]))


def _slabs(structure: Structure, reach: float):
    """The structure as parts to check alone: itself (index None), or, above ``SLAB_ATOMS`` atoms,
    slabs across its highest cell vector, each with the atoms within ``reach`` Å of it (wrapped
    along that vector, across its faces if it is periodic; the slab open along it) and their indices."""
    n, cell, pbc = len(structure), structure.cell, np.asarray(structure.pbc, bool)
    heights = cell_heights(cell)
    axis = int(np.argmax(heights))
    count = min(-(-n // SLAB_ATOMS), int(heights[axis] // (2 * reach))) if heights.all() else 1
    if count < 2:
        yield structure, None
        return
    inverse = np.linalg.inv(cell)
    raw = np.concatenate([(structure.positions[block] - structure.origin) @ inverse[:, axis] for block in blocks(n)])
    frac = raw % 1.0 if pbc[axis] else raw
    edges = np.linspace(0.0, 1.0, count + 1) if pbc[axis] else np.linspace(frac.min(), frac.max(), count + 1)
    edges[-1] += 1e-9
    halo = reach / heights[axis]
    open_along = pbc.copy()
    open_along[axis] = False
    for k in range(count):
        index = np.flatnonzero((frac >= edges[k] - halo) & (frac < edges[k + 1] + halo))
        shift = -np.floor(raw[index]) if pbc[axis] else np.zeros(len(index))  # into the cell along axis
        if pbc[axis] and k == 0:  # the top face's atoms, below the bottom one
            top = np.flatnonzero(frac >= 1.0 - halo)
            index, shift = np.concatenate([index, top]), np.concatenate([shift, -np.floor(raw[top]) - 1.0])
        if pbc[axis] and k == count - 1:  # the bottom face's atoms, above the top one
            bottom = np.flatnonzero(frac < halo)
            index, shift = np.concatenate([index, bottom]), np.concatenate([shift, -np.floor(raw[bottom]) + 1.0])
        positions = structure.positions[index] + shift[:, None] * cell[axis]
        yield Structure(structure.source, positions, cell, open_along, structure.numbers[index], structure.ids[index],
                        structure.origin), index


def _with_periodic_images(structure: Structure, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (wrapped into the cell along periodic axes) plus the images of atoms within
    ``reach`` Å of a periodic face: (n + m, 3) Å, the atoms first, and (m,) the atom each image is
    of. Built a block of atoms at a time: a large structure costs its points, not (n, 3) temporaries."""
    cell, pbc = structure.cell, structure.pbc
    heights = cell_heights(cell)
    if not pbc.any() or not heights.all():
        return structure.positions, np.zeros(0, np.int64)
    inverse = np.linalg.inv(cell)
    near = np.minimum(np.where(pbc, reach / np.where(heights > 0, heights, 1.0), 0.0), 1.0)
    periodic = np.flatnonzero(pbc)
    shifts = [s for s in itertools.product((-1, 0, 1), repeat=len(periodic)) if any(s)]

    def wrapped(block: slice) -> np.ndarray:
        frac = (structure.positions[block] - structure.origin) @ inverse
        frac[:, pbc] %= 1.0
        return frac

    points, index = [[] for _ in shifts], [[] for _ in shifts]  # by shift, as the images are ordered
    for block in blocks(len(structure)):
        frac = wrapped(block)
        for k, shift in enumerate(shifts):
            # an image shifted by +1 is near the cell only if the atom is near the lower face, and so on
            keep = np.ones(len(frac), bool)
            for axis, step in zip(periodic, shift):
                keep &= frac[:, axis] < near[axis] if step == 1 else frac[:, axis] > 1.0 - near[axis]
            s = np.zeros(3)
            s[periodic] = shift
            points[k].append((frac[keep] + s) @ cell)
            index[k].append(np.flatnonzero(keep) + block.start)
    images = [p for parts in points for p in parts]
    out = np.empty((len(structure) + sum(len(p) for p in images), 3))  # allocated once: no second copy
    for block in blocks(len(structure)):  # the atoms themselves, wrapped, computed again block by block
        out[block] = wrapped(block) @ cell
    if images:
        out[len(structure):] = np.concatenate(images)
    return out, np.concatenate([np.zeros(0, np.int64), *(i for parts in index for i in parts)]).astype(np.int64)
