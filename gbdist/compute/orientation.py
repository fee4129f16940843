"""Grain orientations of an fcc bicrystal and its tilt axis, from nearest-neighbour bonds.

A grain's orientation is the rotation taking the ideal fcc bond directions, the twelve
<110>/√2, onto the bonds measured around its fcc atoms (least squares, scipy's
``Rotation.align_vectors``). The misorientation between the two grains is known up to
the 24 proper rotations of the cube; a boundary is a tilt boundary when one of these
equivalent descriptions has its axis in the boundary plane, and that axis is the tilt axis.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import permutations, product

import numpy as np
from ase.geometry import find_mic
from scipy.spatial.transform import Rotation

FCC_BONDS = np.array([v for v in product((-1, 0, 1), repeat=3) if sum(map(abs, v)) == 2], float) / np.sqrt(2)
CUBIC_ROTATIONS = np.array([np.diag(signs)[list(p)] for p in permutations(range(3))
                            for signs in product((-1, 1), repeat=3)
                            if np.linalg.det(np.diag(signs)[list(p)]) > 0])

STARTING_PAIRS = np.array([[[1, 1, 0], [1, 0, 1]], [[1, 1, 0], [0, 1, 1]]]) / np.sqrt(2)  # 60° apart, mirror images


@dataclass
class TiltAxis:
    """The tilt axis of a boundary: ``direction`` (3,) unit vector in the box frame, ``indices`` (3,)
    int, its Miller indices in the lower grain, ``angle`` the tilt angle in degrees, ``period`` the
    repeat of the fcc lattice along it: in lattice constants from ``tilt_axis``, in Å from
    ``bicrystal_tilt_axis``."""

    direction: np.ndarray
    indices: np.ndarray
    angle: float
    period: float

    @property
    def label(self) -> str:
        return "[" + " ".join(str(int(i)) for i in self.indices) + "]"


def _fit(unit: np.ndarray, first: np.ndarray, second: np.ndarray, ideal: np.ndarray) -> tuple[Rotation, float]:
    """Least-squares orientation from unit bonds (m, 3), started with ``first``, ``second`` as the two
    ideal bonds ``ideal`` (2, 3); returns it with the rms misfit (degrees) of each bond to its nearest ideal bond."""
    rotation, _ = Rotation.align_vectors([first, second], ideal)
    for _ in range(3):
        match = np.argmax(unit @ rotation.apply(FCC_BONDS).T, axis=1)
        rotation, _ = Rotation.align_vectors(unit, FCC_BONDS[match])
    cosines = np.sum(unit * rotation.apply(FCC_BONDS[match]), axis=1)
    return rotation, float(np.sqrt(np.mean(np.degrees(np.arccos(np.clip(cosines, -1, 1))) ** 2)))


def grain_orientation(bonds: np.ndarray, max_rms_deg: float = 8.0, starts: int = 6) -> Rotation | None:
    """The rotation (crystal → box) taking ideal fcc bonds onto ``bonds`` (m, 3) Å, the nearest-neighbour
    vectors of fcc atoms of one grain; the best of ``starts`` starting pairs of bonds 60° apart, each
    taken both ways (two bonds fix the shell only up to a {111} mirror, the twin orientation).
    None when they do not fit one fcc lattice within ``max_rms_deg``."""
    unit = bonds / np.linalg.norm(bonds, axis=1, keepdims=True)
    fits = []
    for first in unit[np.linspace(0, len(unit) - 1, starts).astype(int)]:
        partners = np.flatnonzero(np.abs(unit @ first - 0.5) < 0.15)
        for ideal in STARTING_PAIRS if len(partners) else ():
            fits.append(_fit(unit, first, unit[partners[0]], ideal))
    if not fits:
        return None
    rotation, rms = min(fits, key=lambda fit: fit[1])
    return rotation if rms <= max_rms_deg else None


def fcc_bonds(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, atoms: np.ndarray,
              nn_cut: float = 2.9) -> np.ndarray:
    """Nearest-neighbour vectors (m, 3) Å around ``atoms`` (indices), under the minimum image. Candidates
    come from a wrap in fractional coordinates (in a strongly skewed box a few bonds may be missed,
    which only leaves fewer bonds to fit)."""
    inverse = np.linalg.inv(cell)
    vectors = []
    for i in atoms:
        fractional = (positions - positions[i]) @ inverse
        fractional[:, pbc] -= np.round(fractional[:, pbc])
        near = np.flatnonzero(np.linalg.norm(fractional @ cell, axis=1) < nn_cut + 1.0)
        d, length = find_mic(positions[near] - positions[i], cell, pbc)
        vectors.append(d[(length > 0.5) & (length < nn_cut)])
    return np.concatenate(vectors) if vectors else np.zeros((0, 3))


@lru_cache(maxsize=4)
def _integer_directions(max_index: int) -> np.ndarray:
    """Primitive integer vectors with indices up to ``max_index``, lowest index sum first; (m, 3)."""
    vectors = np.array([v for v in product(range(-max_index, max_index + 1), repeat=3)
                        if any(v) and np.gcd.reduce(np.abs(v)) == 1])
    return vectors[np.argsort(np.abs(vectors).sum(axis=1), kind="stable")]


def miller(direction: np.ndarray, max_index: int = 6, tol_deg: float = 2.0) -> np.ndarray:
    """The lowest-index integer vector (3,) within ``tol_deg`` of ``direction`` (3,) (crystal frame),
    else the closest one with indices up to ``max_index``; pointing the same way as ``direction``."""
    vectors = _integer_directions(max_index)
    cosines = np.abs(vectors @ direction) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(direction)
    close = np.flatnonzero(cosines >= np.cos(np.radians(tol_deg)))
    best = vectors[close[0] if len(close) else np.argmax(cosines)]
    return best * (1 if best @ direction >= 0 else -1)


def fcc_period(indices: np.ndarray) -> float:
    """Repeat of the fcc lattice along integer direction ``indices`` (3,), in lattice constants."""
    return float(np.linalg.norm(indices) / (2 if indices.sum() % 2 == 0 else 1))


def tilt_axis(lower: Rotation, upper: Rotation, normal: np.ndarray, tol_deg: float = 1.0,
              max_period: float = 1.8) -> TiltAxis | None:
    """The tilt axis between two grain orientations (rotations crystal → box): among the 24
    cubic-equivalent misorientations, those with an axis within ``tol_deg`` of the boundary plane
    (``normal`` (3,) unit), the one with the smallest angle (then the lowest-index axis). None when
    no description turns about an in-plane axis, or the disorientation turns about the normal (twist)."""
    descriptions = []
    for symmetry in CUBIC_ROTATIONS:
        rotvec = (upper * Rotation.from_matrix(symmetry) * lower.inv()).as_rotvec()
        angle = np.linalg.norm(rotvec)
        if angle >= np.radians(1.0):
            descriptions.append((round(np.degrees(angle), 1), rotvec / angle))
    if not descriptions:
        return None
    in_plane = np.sin(np.radians(tol_deg))
    smallest = min(angle for angle, _ in descriptions)
    if any(angle == smallest and abs(axis @ normal) > np.cos(np.radians(tol_deg)) for angle, axis in descriptions):
        return None  # a twist boundary: its disorientation turns about the normal
    candidates = []
    for angle, axis in descriptions:
        if abs(axis @ normal) < in_plane:
            indices = miller(lower.inv().apply(axis))
            period = fcc_period(indices)
            if period <= max_period:
                candidates.append((angle, int(indices @ indices), indices, period))
    if not candidates:
        return None
    angle, _, indices, period = min(candidates, key=lambda c: (c[0], c[1]))
    direction = lower.apply(indices / np.linalg.norm(indices))
    direction -= (direction @ normal) * normal
    return TiltAxis(direction / np.linalg.norm(direction), indices, angle, period)


def bicrystal_tilt_axis(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, fcc: np.ndarray, normal: int,
                        extent: tuple[float, float], depth: tuple[float, float] = (3.0, 15.0),
                        n_atoms: int = 40) -> TiltAxis | None:
    """The tilt axis of a bicrystal whose boundary spans ``extent`` (lo, hi) Å along box axis ``normal``:
    grain orientations from the bonds of up to ``n_atoms`` fcc atoms (``fcc`` (n,) bool) between
    ``depth`` Å below and above the boundary. None when a grain is not fcc or the boundary is not tilt."""
    x = positions[:, normal]
    lower_band = np.flatnonzero(fcc & (x < extent[0] - depth[0]) & (x > extent[0] - depth[1]))
    upper_band = np.flatnonzero(fcc & (x > extent[1] + depth[0]) & (x < extent[1] + depth[1]))
    grains, lengths = [], []
    for band in (lower_band, upper_band):
        if len(band) == 0:
            return None
        chosen = band[np.linspace(0, len(band) - 1, min(n_atoms, len(band))).astype(int)]
        bonds = fcc_bonds(positions, cell, pbc, chosen)
        grains.append(grain_orientation(bonds) if len(bonds) >= 12 else None)
        lengths.append(np.linalg.norm(bonds, axis=1))
    if grains[0] is None or grains[1] is None:
        return None
    axis = tilt_axis(grains[0], grains[1], np.eye(3)[normal])
    lattice_constant = np.sqrt(2) * float(np.median(np.concatenate(lengths)))  # a = √2 × the bond length
    return None if axis is None else replace(axis, period=axis.period * lattice_constant)
