"""Grain-boundary region selection: which atoms are the local atomic environments (LAEs).

The paper's rule (Rosenbrock et al. 2017): atoms whose CNA class is not fcc, outside the
fixed end slabs, give the boundary's extent along its normal; every atom within that
extent padded by ``pad`` (the SOAP cutoff) on both sides is an LAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.cna import FCC, compute_cna
from gbdist.errors import StructureError
from gbdist.structure import Structure

AXES = {"x": 0, "y": 1, "z": 2}


class SelectParams(BaseModel):
    """Parameters of the GB-region selection.

    ``surface_skin`` applies only where no slab-type atoms exist and the normal is open:
    atoms that close (Å) to the two free surfaces are not taken as boundary atoms.
    """

    model_config = ConfigDict(extra="forbid")
    pad: float = Field(5.0, gt=0, description="Å added to the boundary extent on both sides")
    normal: Literal["auto", "x", "y", "z"] = "auto"
    cna_column: str = "c_cna"
    slab_types: list[int] = [4, 5]
    surface_skin: float = Field(6.0, ge=0)


@dataclass
class Selection:
    """The LAEs of one structure.

    centres : (n_lae,) int, indices into the structure, ordered by atom id.
    cna : (n_lae,) int8, CNA class of each centre (1 fcc, 2 hcp, 3 bcc, 4 ico, 5 other).
    normal : Cartesian axis of the boundary normal (0, 1, 2).
    extent : (lo, hi), Å, of the non-fcc boundary atoms along the normal (unpadded).
    """

    centres: np.ndarray
    cna: np.ndarray
    normal: int
    extent: tuple[float, float]


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


def cna_classes(structure: Structure, column: str = "c_cna") -> np.ndarray:
    """Per-atom CNA classes from the file's column, else computed with asap3; (n,) int8."""
    if column in structure.extras:
        return np.asarray(structure.extras[column]).astype(np.int8)
    return compute_cna(structure)


def select_gb_region(structure: Structure, params: SelectParams | None = None) -> Selection:
    """Select the LAEs of a grain boundary by the paper's rule.

    Raises
    ------
    StructureError
        If no atom outside the end slabs is non-fcc (a perfect crystal: no boundary).
    """
    params = params or SelectParams()
    axis = boundary_normal(structure, params.normal)
    x = structure.positions[:, axis]
    cna = cna_classes(structure, params.cna_column)
    types = structure.extras.get("type")
    in_slab = np.isin(types, params.slab_types) if types is not None else np.zeros(len(x), bool)
    core = (cna != FCC) & ~in_slab
    if not in_slab.any() and not structure.pbc[axis] and params.surface_skin > 0:
        core &= (x > x.min() + params.surface_skin) & (x < x.max() - params.surface_skin)
    if not core.any():
        raise StructureError(
            structure.source,
            "no atoms with CNA ≠ fcc outside the end slabs; cannot place the boundary",
        )
    lo, hi = float(x[core].min()), float(x[core].max())
    inside = np.flatnonzero((x >= lo - params.pad) & (x <= hi + params.pad))
    centres = inside[np.argsort(structure.ids[inside], kind="stable")]
    return Selection(centres=centres, cna=cna[centres], normal=axis, extent=(lo, hi))
