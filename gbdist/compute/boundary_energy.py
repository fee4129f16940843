"""A boundary's energy from its atoms' excess energies, and the energy of each building block.

The window rule: a flat boundary's energy (J/m²) is the sum of the excess site energies (eV) of the
atoms within ``window`` Å of its plane, over its area (Å²). The plane is placed by the excess itself
(``boundary_plane``), so the rule needs no position from the user and serves computed and predicted
site energies alike. Plain functions of arrays.
"""

from __future__ import annotations

import numpy as np

EV_PER_A2 = 16.021766208
"""J/m² in one eV/Å²."""

SURFACE = 5.0
"""Å from either end of a structure along its normal whose atoms do not place the plane: a cut-out's
outer layers miss neighbours, and their excess energy is a free surface's, not the boundary's."""


def boundary_area(cell: np.ndarray, normal: int) -> float:
    """Å², the boundary's area in a cell (3, 3) whose vector ``normal`` crosses it: the face spanned by
    the other two cell vectors."""
    return float(np.linalg.norm(np.cross(cell[(normal + 1) % 3], cell[(normal + 2) % 3])))


def boundary_plane(x: np.ndarray, excess: np.ndarray) -> float:
    """Å along the normal: the median of the atoms' positions ``x`` (n,) weighted by their positive
    excess energy (n,), the atoms within ``SURFACE`` of either end left out (NaN excess counts as none)."""
    interior = (x > x.min() + SURFACE) & (x < x.max() - SURFACE)
    weight = np.where(interior, np.clip(np.nan_to_num(excess), 0.0, None), 0.0)
    if weight.sum() <= 0:
        return float(np.median(x))
    order = np.argsort(x)
    cumulative = np.cumsum(weight[order])
    return float(x[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def window_energy(x: np.ndarray, excess: np.ndarray, area: float, window: float) -> tuple[float, int, float]:
    """(energy J/m², atoms summed, plane Å): the excess (eV, (n,)) of the atoms within ``window`` Å of
    the plane over ``area`` Å². The energy is NaN if an atom in the window has no excess (NaN)."""
    plane = boundary_plane(x, excess)
    inside = np.abs(x - plane) <= window
    summed = excess[inside]
    energy = float(summed.sum()) / area * EV_PER_A2 if np.isfinite(summed).all() else np.nan
    return energy, int(inside.sum()), plane


def block_energies(labels: np.ndarray, excess: np.ndarray, n_unique: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unique LAE: (count (n_unique,) int64, mean (n_unique,), standard deviation (n_unique,)) of
    the excess energies (eV) of the rows assigned to it. ``labels`` (n,) unique-LAE ids, ``excess`` (n,);
    rows with NaN excess are left out; mean and spread are NaN where a unique LAE has no row."""
    known = np.isfinite(excess)
    labels, excess = labels[known], excess[known]
    count = np.bincount(labels, minlength=n_unique)
    total = np.bincount(labels, excess, minlength=n_unique)
    squares = np.bincount(labels, excess ** 2, minlength=n_unique)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        spread = np.sqrt(np.clip(squares / count - mean ** 2, 0.0, None))
    return count.astype(np.int64), mean, spread
