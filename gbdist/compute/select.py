"""Grain-boundary region selection: which atoms are the local atomic environments (LAEs).

Every atom gets a structure type (``gbdist.compute.crystal``); the most common of fcc, bcc and hcp
is the structure's bulk lattice, and the other atoms outside fixed end slabs and away from free
surfaces are the boundary core. Two rules turn the core into LAEs:

- ``extent`` (the paper's, Rosenbrock et al. 2017): the core's extent along the one boundary normal,
  padded by ``pad`` (the SOAP cutoff) on both sides: a bicrystal with one flat boundary.
- ``distance``: every atom within ``pad`` of a core atom, periodic images included: fully periodic
  cells with two boundaries, polycrystals, curved boundaries, triple junctions.

``auto`` takes ``extent`` for a cell with exactly one open axis, else ``distance``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gbdist.compute.crystal import (
    CONVENTIONS,
    LATTICES,
    atoms_within,
    bulk_lattice,
    complete_cell,
    fractional,
    lattice_constant,
    structure_types,
)
from gbdist.errors import StructureError
from gbdist.io.checks import cell_heights
from gbdist.structure import Structure

AXES = {"x": 0, "y": 1, "z": 2}


class SelectParams(BaseModel):
    """Parameters of the GB-region selection.

    ``type_column`` names a per-atom structure-type column of the files, read under
    ``type_convention`` (a key of ``gbdist.compute.crystal.CONVENTIONS``); without it the types are
    computed by polyhedral template matching. ``surface_skin`` applies only where no slab-type atoms
    exist: core atoms that close (Å) to a free surface (an open axis) are not boundary atoms.
    """

    model_config = ConfigDict(extra="forbid")
    pad: float = Field(5.0, gt=0, description="Å around the boundary core")
    rule: Literal["auto", "extent", "distance"] = "auto"
    normal: Literal["auto", "x", "y", "z"] = "auto"
    lattice: Literal["auto", "fcc", "bcc", "hcp"] = "auto"
    type_column: str | None = None
    type_convention: Literal[tuple(CONVENTIONS)] | None = None
    slab_types: list[int] = [4, 5]
    surface_skin: float = Field(6.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _older_records(cls, data):
        """Read a record of gbdist before structure types (``cna_column``: a LAMMPS cna/atom column,
        the extent rule, fcc) as the same selection."""
        if isinstance(data, dict) and "cna_column" in data:
            data = dict(data)
            data.setdefault("type_column", data.pop("cna_column"))
            for key, value in (("type_convention", "lammps"), ("rule", "extent"), ("lattice", "fcc")):
                data.setdefault(key, value)
        return data

    @model_validator(mode="after")
    def _convention_declared(self):
        if (self.type_column is None) != (self.type_convention is None):
            raise ValueError("select.type_column and select.type_convention go together: a structure-type "
                             f"column is read only under a declared convention ({', '.join(CONVENTIONS)})")
        return self


@dataclass
class Selection:
    """The LAEs of one structure.

    centres : (n_lae,) int, indices into the structure, ordered by atom id.
    atom_types : (n,) int8, structure type of every atom (1 fcc, 2 hcp, 3 bcc, 4 ico, 5 other, 6 sc);
        ``types``, those of the centres.
    rule : "extent" or "distance".
    lattice : the bulk lattice ("fcc", "bcc", "hcp"); lattice_constant : its a, Å; host : the bulk's
        most common element.
    normal : Cartesian axis of the boundary normal (0, 1, 2), −1 where there is none.
    extent : (lo, hi), Å, of the core along the normal (unpadded); NaN for the distance rule.
    thickness : Å, n_lae / (atomic density × boundary area): the selected slab's thickness; NaN
        where the boundary area is not defined (not one or two flat boundaries).
    """

    centres: np.ndarray
    atom_types: np.ndarray
    rule: str
    lattice: str
    lattice_constant: float
    host: str
    normal: int
    extent: tuple[float, float]
    thickness: float

    @property
    def types(self) -> np.ndarray:
        return self.atom_types[self.centres]


def boundary_normal(structure: Structure, normal: str = "auto") -> int:
    """The GB normal axis: the given one, or the only non-periodic axis of the box."""
    if normal != "auto":
        return AXES[normal]
    open_axes = np.flatnonzero(~structure.pbc)
    if len(open_axes) != 1:
        raise StructureError(
            structure.source,
            f"cannot detect the boundary normal: the box is periodic along "
            f"{[a for a, i in AXES.items() if structure.pbc[i]]}; give the normal (x, y or z)",
        )
    return int(open_axes[0])


def region_rule(structure: Structure, rule: str = "auto") -> str:
    """The rule for this structure: the given one, or ``extent`` for a cell with exactly one open axis."""
    if rule != "auto":
        return rule
    return "extent" if np.count_nonzero(~structure.pbc) == 1 else "distance"


def away_from_surfaces(structure: Structure, skin: float, axes) -> np.ndarray:
    """(n,) bool: atoms farther than ``skin`` Å from both ends of the atoms along each open axis in ``axes``."""
    keep = np.ones(len(structure), bool)
    for axis in axes:
        if not structure.pbc[axis] and skin > 0:
            x = structure.positions[:, axis]
            keep &= (x > x.min() + skin) & (x < x.max() - skin)
    return keep


VACUUM = 5.0
"""Å; an empty stretch this wide across a periodic cell is vacuum between two free surfaces."""


def filled_span(structure: Structure, axis: int) -> tuple[np.ndarray, float]:
    """Along ``axis``: each atom's position (n,) Å from one free surface, and the span (Å) the atoms
    fill. An open axis is spanned from its lowest to its highest atom (positions along the Cartesian
    axis); a periodic one from the far side of a vacuum gap (≥ ``VACUUM``, measured normal to the cell
    face), or (NaN positions, the full height) where there is none."""
    if not structure.pbc[axis]:
        x = structure.positions[:, axis]
        return x - x.min(), float(x.max() - x.min())
    height = cell_heights(complete_cell(structure))[axis]
    along = fractional(structure)[:, axis]
    frac = np.sort(along)
    gaps = np.diff(np.concatenate([frac, frac[:1] + 1.0]))
    widest = int(np.argmax(gaps))
    if gaps[widest] * height < VACUUM:
        return np.full(len(structure), np.nan), float(height)
    start = frac[(widest + 1) % len(frac)]
    u = (along - start) % 1.0
    return u * height, float((1.0 - gaps[widest]) * height)


def surface_depth(structure: Structure) -> np.ndarray:
    """(n,) Å from each atom to the nearest free surface (an open axis, or vacuum across a periodic
    one; ``filled_span``); inf where the cell has no free surface."""
    depth = np.full(len(structure), np.inf)
    for axis in range(3):
        u, span = filled_span(structure, axis)
        if np.isfinite(u).all():
            depth = np.minimum(depth, np.minimum(u, span - u))
    return depth


FLAT_BIN = 1.0
"""Å, bin width of the core's profile along a candidate normal."""

FLAT_GAP = 3.0
"""Å, empty stretch of the profile that still belongs to one boundary."""

FLAT_SHARE = 0.5
"""Most of a periodic cell's height that flat boundaries occupy."""

FLAT_CORE = 0.5
"""Least share of core atoms in a bin of a boundary layer (scattered core atoms, e.g. in an alloy's
grains, make no layer)."""

FLAT_BULK = 0.15
"""Largest mean share of core atoms in the bins between the layers (a polycrystal's bins, all cut by
boundaries, hold 0.3–0.5)."""


def flat_boundaries(structure: Structure, core: np.ndarray, pad: float, normal: str = "auto") -> tuple[int, int]:
    """(axis, count) of the flat boundaries of a periodic cell: along a periodic axis at least 4 ×
    ``pad`` tall (the given ``normal``, else the one where the core is narrowest), the bins where at
    least ``FLAT_CORE`` of the atoms are core are at most ``FLAT_SHARE`` of the bins the atoms occupy
    and form one or two layers, and the other bins hold on average at most ``FLAT_BULK`` core atoms;
    (−1, 0) if no axis qualifies (a polycrystal, a curved boundary, a
    cell too thin to hold bulk between boundaries)."""
    candidates = [AXES[normal]] if normal != "auto" else range(3)
    heights = cell_heights(complete_cell(structure))
    best = (-1, 0, 1.0)
    for axis in candidates:
        if not structure.pbc[axis] or heights[axis] < 4 * pad:
            continue
        frac = fractional(structure)[:, axis]
        n_bins = max(int(heights[axis] / FLAT_BIN), 1)
        bins = np.minimum((frac * n_bins).astype(int), n_bins - 1)
        atoms = np.bincount(bins, minlength=n_bins)
        fraction = np.bincount(bins[core], minlength=n_bins) / np.maximum(atoms, 1)
        occupied = fraction >= FLAT_CORE
        share = occupied.sum() / max(np.count_nonzero(atoms), 1)
        between = ~occupied & (atoms > 0)
        layers = _circular_runs(occupied, int(np.ceil(FLAT_GAP / (heights[axis] / n_bins))))
        if (share <= FLAT_SHARE and layers in (1, 2) and between.any() and fraction[between].mean() <= FLAT_BULK
                and share < best[2]):
            best = (axis, layers, share)
    return best[0], best[1]


def _circular_runs(occupied: np.ndarray, gap: int) -> int:
    """Runs of occupied bins on a circle, empty stretches of up to ``gap`` bins bridged."""
    if occupied.all():
        return 1
    start = int(np.argmin(occupied))  # an empty bin: unroll the circle there
    rolled = np.roll(occupied, -start)
    runs, empty = 0, gap + 1
    for full in rolled:
        if full:
            runs += empty > gap
            empty = 0
        else:
            empty += 1
    if runs > 1 and empty + int(np.argmax(rolled)) <= gap:  # the stretch through the unrolling point
        runs -= 1
    return runs


def select_gb_region(structure: Structure, params: SelectParams | None = None) -> Selection:
    """Select the LAEs of a grain boundary: structure types, bulk lattice, core, then the rule.

    Raises
    ------
    StructureError
        If no atom outside the end slabs and away from surfaces differs from the bulk lattice (a
        perfect crystal: no boundary), or no atom is of a known lattice.
    """
    params = params or SelectParams()
    types = structure_types(structure, params.type_column, params.type_convention)
    lattice = bulk_lattice(types, structure.source, params.lattice)
    bulk = types == LATTICES[lattice]
    if not bulk.any():
        raise StructureError(structure.source, f"no atom is {lattice} (select.lattice): no bulk to find the boundary in")
    slab = structure.extras.get("type")
    in_slab = np.isin(slab, params.slab_types) if slab is not None else np.zeros(len(structure), bool)
    rule = region_rule(structure, params.rule)
    core = ~bulk & ~in_slab
    if rule == "extent":
        axis = boundary_normal(structure, params.normal)
        skin_axes = [axis] if not in_slab.any() else []
        core &= away_from_surfaces(structure, params.surface_skin, skin_axes)
    elif not in_slab.any():
        core &= surface_depth(structure) > params.surface_skin
    if not core.any():
        raise StructureError(structure.source, f"no atom outside the end slabs and away from surfaces is other than "
                                               f"{lattice}; cannot place the boundary")
    if rule == "extent":
        x = structure.positions[:, axis]
        lo, hi = float(x[core].min()), float(x[core].max())
        inside = np.flatnonzero((x >= lo - params.pad) & (x <= hi + params.pad))
        extent, thickness = (lo, hi), hi - lo + 2 * params.pad
    else:
        inside = atoms_within(structure, core, params.pad)
        axis, layers = flat_boundaries(structure, core, params.pad, params.normal)
        extent, thickness = (float("nan"), float("nan")), float("nan")
        if layers and structure.pbc.all():  # n_lae / (ρ n_b A), ρ = n / (A × the span the atoms fill)
            thickness = len(inside) * filled_span(structure, axis)[1] / (len(structure) * layers)
    centres = inside[np.argsort(structure.ids[inside], kind="stable")]
    host = Counter(structure.numbers[bulk].tolist()).most_common(1)[0][0]
    return Selection(centres=centres, atom_types=types, rule=rule, lattice=lattice,
                     lattice_constant=lattice_constant(structure, np.flatnonzero(bulk), lattice),
                     host=chemical_symbols[host], normal=int(axis), extent=extent, thickness=float(thickness))
